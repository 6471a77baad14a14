"""Anthropic's Messages API (``POST /v1/messages``), behind OpenAI's shapes.

Requests are given in OpenAI's chat shape and sent in Anthropic's:

- ``system`` and ``developer`` messages, wherever they are, are lifted (in
  order) into the top-level ``system``: one plain string stays a string,
  anything else becomes a list of text blocks;
- ``max_tokens`` is required by Anthropic: when neither ``max_tokens`` nor
  ``max_completion_tokens`` is given it is :data:`DEFAULT_MAX_TOKENS` (4096),
  or the adapter's own ``max_tokens``;
- ``stop`` becomes ``stop_sequences``; ``safety_identifier`` (else ``user``)
  becomes ``metadata.user_id``; ``stream_options`` is not sent (Anthropic
  always streams usage); ``temperature`` must be within 0..1 (Anthropic's
  range); ``response_format`` becomes structured outputs or a forced tool
  (:mod:`providers.anthropic.structured`); what the Messages API has no field
  for (``seed``, ``n>1``, the penalties, ``logprobs``, ``logit_bias``...) is
  refused before any I/O, or dropped with ``drop_params`` (:data:`CHAT_PARAMS`);
- text that is empty or only whitespace is left out (Anthropic rejects empty
  text blocks); an assistant turn left with nothing is omitted, a user
  message left with nothing is an ``InvalidRequestError``;
- ``image_url`` parts become ``image`` blocks: a ``data:<type>;base64,`` URL
  gives a base64 source, an http(s) URL a url source (``detail`` has no
  Anthropic equivalent and is not sent);
- function ``tools`` become ``{name, description, input_schema}``;
  ``tool_choice`` ``auto``/``required``/``none``/a named function become
  ``auto``/``any``/``none``/``tool``; ``parallel_tool_calls=False`` becomes
  ``disable_parallel_tool_use``;
- an assistant's ``tool_calls`` become ``tool_use`` blocks (the arguments
  JSON string parsed into ``input``); ``tool`` messages become
  ``tool_result`` blocks, consecutive ones sharing one user message;
- a ``cache_control`` key on a message or on a tool is carried onto its
  (last) content block or tool; content parts Anthropic already understands
  (``text`` with ``cache_control``, ``image``, ``document``, ``thinking``...)
  and tools without a ``function`` key pass through as given;
- every parameter that is not OpenAI's (``thinking``, ``top_k``,
  ``output_config``...) passes through into the body, ``extra_body`` is
  merged in last and ``extra_headers`` (for ``anthropic-beta``) are sent as
  headers. ``api_version=`` overrides the ``anthropic-version`` header
  (``2023-06-01``).

Responses: ``text`` blocks are the message content, ``thinking`` blocks its
``reasoning_content``, ``tool_use`` blocks its ``tool_calls`` (ids kept, input
as a JSON string). ``prompt_tokens`` counts every input token (fresh, written
to and read from the prompt cache); ``cached_tokens`` is the part read from
the cache, ``cache_write_tokens`` the part written to it. Anthropic sends no
creation time, so ``created`` is 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import httpx

from pipeline.adapter import (
    ADVISORY_PARAMS,
    CHAT,
    ChatResponse,
    Endpoint,
    HTTPAdapter,
    ParamPolicy,
    Request,
    errors,
    read_json,
)
from providers.anthropic.request import chat_body
from providers.anthropic.response import error_from_body, message_response
from providers.anthropic.stream import AnthropicStreamDecoder

__all__ = [
    "ANTHROPIC",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_VERSION",
    "CHAT_PARAMS",
    "DEFAULT_MAX_TOKENS",
    "AnthropicMessages",
    "AnthropicStreamDecoder",
]

# What the Messages API does with each OpenAI chat parameter (the rest: refused).
CHAT_PARAMS = ParamPolicy(
    send={"temperature", "top_p"},
    translate={
        "max_tokens": "max_tokens (4096 when absent)",
        "max_completion_tokens": "max_tokens",
        "stop": "stop_sequences",
        "tools": "tools (input_schema)",
        "tool_choice": "tool_choice (auto / any / none / tool)",
        "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
        "response_format": "output_config.format (json_schema), a forced tool (json_object)",
        "user": "metadata.user_id",
        "safety_identifier": "metadata.user_id",
    },
    drop={"stream_options", *ADVISORY_PARAMS - {"user", "safety_identifier"}},
    fixed={"n": 1, "logprobs": False, "modalities": ["text"]},
)

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


@attrs.frozen(kw_only=True)
class AnthropicMessages(HTTPAdapter):
    """The Messages API, configurable for proxies and gateways that speak it.

    Besides the settings every adapter has (:class:`pipeline.adapter.HTTPAdapter`;
    ``base_url`` without ``/v1``, the key sent as ``x-api-key``):

    - ``version``: the ``anthropic-version`` header (``api_version=`` per call
      overrides it);
    - ``max_tokens``: the default when a call gives none.
    """

    paths: ClassVar[Mapping[str, str]] = MappingProxyType({"chat": "/v1/messages"})
    key_header: ClassVar[str] = "x-api-key"
    key_prefix: ClassVar[str] = ""

    name: str = "anthropic"
    base_url: str = ANTHROPIC_BASE_URL
    key_envs: tuple[str, ...] = ("ANTHROPIC_API_KEY",)
    endpoints: frozenset[Endpoint] = CHAT
    params: Mapping[str, ParamPolicy] = MappingProxyType({"chat": CHAT_PARAMS})
    priority: int = 10
    prefixes: tuple[str, ...] = ("claude-",)
    version: str = ANTHROPIC_VERSION
    max_tokens: int = DEFAULT_MAX_TOKENS

    def headers_for(self, request: Request) -> dict[str, str]:
        version = {"anthropic-version": request.api_version or self.version}
        return {**self.headers, **version, **self.auth_headers(request)}

    def chat_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return chat_body(request, params, self.max_tokens)

    def parse_chat(self, request: Request, response: httpx.Response) -> ChatResponse:
        return message_response(request, read_json(request, response))

    def stream_decoder(self, request: Request) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from_body(request, response)


ANTHROPIC = AnthropicMessages()
