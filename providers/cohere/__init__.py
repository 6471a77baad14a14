"""Cohere's v2 API: ``/v2/chat`` (named SSE events) and ``/v2/embed``.

- **Key**: the per-call ``api_key``, else the adapter's, else ``CO_API_KEY``
  (the official SDK's variable), else ``COHERE_API_KEY``; sent as
  ``Authorization: Bearer``. None at all is an ``AuthenticationError`` before
  any I/O. **Server**: ``api_base`` or ``https://api.cohere.com`` (its root,
  without ``/v2``).
- **Chat requests**: messages keep their roles (``developer`` is ``system``);
  a user or system message always carries ``content`` (v2 requires it), an
  assistant turn with neither content nor tool calls is omitted;
  assistant tool calls go as v2 ``tool_calls`` (arguments a JSON string) with
  the reply's ``reasoning_content`` as ``tool_plan``; tool results go as
  ``tool`` messages with ``tool_call_id``. ``top_p``/``top_k``/``stop`` become
  ``p``/``k``/``stop_sequences``; ``tool_choice`` ``"required"``/``"none"``
  become ``REQUIRED``/``NONE`` (Cohere cannot force one named tool);
  ``response_format`` becomes ``{"type": "json_object", "json_schema": ...}``.
  ``user`` is dropped; OpenAI parameters v2 lacks (``logit_bias``, ``n>1``...)
  are refused unless ``drop_params`` (:data:`CHAT_PARAMS`). Cohere's own
  parameters (``documents``, ``safety_mode``, ``thinking``...) pass through.
- **Replies**: text parts are ``content``; ``thinking`` parts and the
  ``tool_plan`` are ``reasoning_content``; ``finish_reason`` ``COMPLETE`` and
  ``STOP_SEQUENCE`` are ``stop``, ``MAX_TOKENS`` is ``length``, ``TOOL_CALL``
  is ``tool_calls``, ``ERROR`` and anything else ``stop``; usage is
  ``usage.tokens`` (the billed units when tokens are absent). Citations have
  no OpenAI counterpart and are not carried over.
- **Embeddings**: ``input_type`` defaults to ``"search_document"`` (pass
  ``input_type="search_query"`` for queries); float vectors are asked for;
  ``dimensions`` is ``output_dimension``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import attrs
import httpx

from pipeline.adapter import (
    ADVISORY_PARAMS,
    CHAT_EMBEDDING,
    Endpoint,
    HTTPAdapter,
    ParamPolicy,
    Request,
    errors,
)
from providers.cohere.request import chat_body, embed_body
from providers.cohere.response import error_from, parse_chat, parse_embedding
from providers.cohere.stream import CohereStreamDecoder

__all__ = [
    "CHAT_PARAMS",
    "COHERE",
    "DEFAULT_BASE_URL",
    "EMBEDDING_PARAMS",
    "KEY_ENVS",
    "Cohere",
    "CohereStreamDecoder",
]

# What /v2/chat and /v2/embed do with each OpenAI parameter (the rest: refused).
CHAT_PARAMS = ParamPolicy(
    send={"temperature", "seed", "presence_penalty", "frequency_penalty", "max_tokens", "tools"},
    rename={"top_p": "p", "max_completion_tokens": "max_tokens"},
    translate={
        "stop": "stop_sequences",
        "tool_choice": "tool_choice (REQUIRED / NONE)",
        "response_format": "response_format (json_object + json_schema)",
    },
    drop={"stream_options", *ADVISORY_PARAMS},
    fixed={"n": 1, "parallel_tool_calls": True, "logprobs": False, "modalities": ["text"]},
)
EMBEDDING_PARAMS = ParamPolicy(
    endpoint="embedding",
    rename={"dimensions": "output_dimension"},
    drop=ADVISORY_PARAMS,
    fixed={"encoding_format": "float"},
)

DEFAULT_BASE_URL = "https://api.cohere.com"
KEY_ENVS = ("CO_API_KEY", "COHERE_API_KEY")


@attrs.frozen(kw_only=True)
class Cohere(HTTPAdapter):
    """Cohere's v2 API. See the module docstring."""

    paths: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"chat": "/v2/chat", "embedding": "/v2/embed"}
    )

    name: str = "cohere"
    base_url: str = DEFAULT_BASE_URL
    key_envs: tuple[str, ...] = KEY_ENVS
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    params: Mapping[str, ParamPolicy] = MappingProxyType(
        {"chat": CHAT_PARAMS, "embedding": EMBEDDING_PARAMS}
    )
    prefixes: tuple[str, ...] = (
        "command-",
        "embed-english",
        "embed-multilingual",
        "embed-v4",
        "c4ai-",
    )

    # The codec's functions are this adapter's methods (a subclass may override any).
    chat_body = staticmethod(chat_body)
    embedding_body = staticmethod(embed_body)
    parse_chat = staticmethod(parse_chat)
    parse_embedding = staticmethod(parse_embedding)

    def stream_decoder(self, request: Request) -> CohereStreamDecoder:
        return CohereStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from(request, response)


COHERE = Cohere()
