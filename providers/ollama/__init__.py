"""Ollama's native API: ``/api/chat`` (NDJSON streams) and ``/api/embed``.

Name a model ``"ollama/llama3.2"``: local model names collide with every other
provider's, so Ollama claims no bare names for auto-detection.

- **Server**: the per-call ``api_base``, else the adapter's ``base_url``, else
  ``OLLAMA_API_BASE``, else ``OLLAMA_HOST`` (Ollama's own forms: ``host``,
  ``host:port`` or a URL; without a scheme it is ``http`` on port 11434), else
  ``http://localhost:11434``. Give the server's root, without ``/api``.
- **Key**: none needed locally. Ollama Cloud (``api_base="https://ollama.com"``)
  takes ``Authorization: Bearer``: the per-call ``api_key``, the adapter's, or
  ``OLLAMA_API_KEY`` when set.
- **Requests**: ``stream`` is always sent (Ollama streams when it is left out).
  OpenAI's parameters are mapped (``max_tokens`` to ``options.num_predict``,
  ``stop``, ``response_format`` to ``format``); ``tools``, ``think``,
  ``keep_alive`` and ``format`` go at the top level; every other parameter
  is a model option (``num_ctx``, ``top_k``, ``repeat_penalty``...) and goes
  into ``options``, as does an ``options`` dict. ``n``, ``tool_choice`` and
  ``parallel_tool_calls`` have no native counterpart: only the value Ollama
  always behaves as (1, ``"auto"``, ``True``) is accepted; ``user`` is
  dropped; what :data:`CHAT_PARAMS` does not list (``logit_bias``,
  ``logprobs``...) is an ``InvalidRequestError`` unless ``drop_params``.
- **Messages**: tool-call arguments go as objects; a ``tool`` message carries
  the ``tool_name`` of the call it answers; images must be inline
  (``data:...;base64,`` URLs) and go in ``images``; ``reasoning_content`` of
  an earlier reply goes back as ``thinking``.
- **Replies**: ``message.thinking`` is ``reasoning_content``; tool-call
  arguments come back as JSON strings, with Ollama's id when it sends one
  (Ollama Cloud does) or a stable id derived from the call; ``done_reason``
  ``stop`` with tool calls is ``finish_reason="tool_calls"``; usage is
  ``prompt_eval_count``/``eval_count``.
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
    first_env,
)
from providers.ollama.request import chat_body, embed_body, server_url
from providers.ollama.response import (
    OllamaStreamDecoder,
    created_from,
    error_from,
    finish_from,
    parse_chat,
    parse_embedding,
    usage_from,
)

__all__ = [
    "BASE_URL_ENVS",
    "CHAT_PARAMS",
    "DEFAULT_BASE_URL",
    "EMBEDDING_PARAMS",
    "KEY_ENV",
    "OLLAMA",
    "Ollama",
    "OllamaStreamDecoder",
    "created_from",
    "finish_from",
    "usage_from",
]

# What /api/chat and /api/embed do with each OpenAI parameter (the rest: refused).
CHAT_PARAMS = ParamPolicy(
    send={"tools"},
    translate={
        "max_tokens": "options.num_predict",
        "max_completion_tokens": "options.num_predict",
        "stop": "options.stop",
        "temperature": "options.temperature",
        "top_p": "options.top_p",
        "seed": "options.seed",
        "presence_penalty": "options.presence_penalty",
        "frequency_penalty": "options.frequency_penalty",
        "response_format": 'format ("json" or the schema)',
    },
    drop={"stream_options", *ADVISORY_PARAMS},
    fixed={
        "n": 1,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "logprobs": False,
        "modalities": ["text"],
    },
)
EMBEDDING_PARAMS = ParamPolicy(
    endpoint="embedding",
    send={"dimensions"},
    drop=ADVISORY_PARAMS,
    fixed={"encoding_format": "float"},
)

DEFAULT_BASE_URL = "http://localhost:11434"
BASE_URL_ENVS = ("OLLAMA_API_BASE", "OLLAMA_HOST")
KEY_ENV = "OLLAMA_API_KEY"


@attrs.frozen(kw_only=True)
class Ollama(HTTPAdapter):
    """An Ollama server, through its native API. See the module docstring.

    ``base_url`` left empty means: ``OLLAMA_API_BASE``, else ``OLLAMA_HOST``
    (in Ollama's own forms), else ``http://localhost:11434``."""

    paths: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"chat": "/api/chat", "embedding": "/api/embed"}
    )
    key_required: ClassVar[bool] = False  # only Ollama Cloud takes one

    name: str = "ollama"
    base_url_envs: tuple[str, ...] = BASE_URL_ENVS
    key_envs: tuple[str, ...] = (KEY_ENV,)
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    params: Mapping[str, ParamPolicy] = MappingProxyType(
        {"chat": CHAT_PARAMS, "embedding": EMBEDDING_PARAMS}
    )

    def base(self, request: Request) -> str:
        """Per call, else configured, else the environment, else the local default."""
        base = request.api_base or self.base_url
        if not base:
            found = first_env(self.base_url_envs)
            base = server_url(found) if found else DEFAULT_BASE_URL
        return base.rstrip("/")

    # The codec's functions are this adapter's methods (a subclass may override any).
    chat_body = staticmethod(chat_body)
    embedding_body = staticmethod(embed_body)
    parse_chat = staticmethod(parse_chat)
    parse_embedding = staticmethod(parse_embedding)

    def stream_decoder(self, request: Request) -> OllamaStreamDecoder:
        return OllamaStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from(request, response)


OLLAMA = Ollama()
