"""Anthropic's Messages API (``POST /v1/messages``), behind OpenAI's shapes.

Requests are given in OpenAI's chat shape and sent in Anthropic's:

- ``system`` and ``developer`` messages, wherever they are, are lifted (in
  order) into the top-level ``system``: one plain string stays a string,
  anything else becomes a list of text blocks;
- ``max_tokens`` is required by Anthropic: when neither ``max_tokens`` nor
  ``max_completion_tokens`` is given it is :data:`DEFAULT_MAX_TOKENS` (4096),
  or the adapter's own ``max_tokens``;
- ``stop`` becomes ``stop_sequences``; ``user`` becomes ``metadata.user_id``;
  ``stream_options`` is not sent (Anthropic always streams usage);
  ``temperature`` must be within 0..1 (Anthropic's range);
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
- every other parameter (``thinking``, ``top_k``...) passes through into the
  body, ``extra_body`` is merged in last and ``extra_headers`` (for
  ``anthropic-beta``) are sent as headers. ``api_version=`` overrides the
  ``anthropic-version`` header (``2023-06-01``).

Responses: ``text`` blocks are the message content, ``thinking`` blocks its
``reasoning_content``, ``tool_use`` blocks its ``tool_calls`` (ids kept, input
as a JSON string). ``prompt_tokens`` counts every input token (fresh, written
to and read from the prompt cache); ``cached_tokens`` is the part read from
the cache. Anthropic sends no creation time, so ``created`` is 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs
import httpx

from pipeline import errors
from pipeline._request import Endpoint, Request
from pipeline._responses import ChatResponse
from pipeline._secrets import Secret
from pipeline.adapter import parsing, read_json, timeout_extensions
from providers._credentials import api_key
from providers.anthropic.request import chat_body
from providers.anthropic.response import error_from_body, message_response
from providers.anthropic.stream import AnthropicStreamDecoder
from providers.openai_compatible import CHAT

__all__ = [
    "ANTHROPIC",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "AnthropicMessages",
    "AnthropicStreamDecoder",
]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

_EMPTY: Mapping[str, str] = MappingProxyType({})

# -- the adapter -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AnthropicMessages:
    """The Messages API, configurable for proxies and gateways that speak it.

    - ``base_url``: without ``/v1`` (``https://api.anthropic.com``);
      ``api_base=`` per call overrides it;
    - ``key_env``: the environment variable holding the key (None: send no
      key); ``api_key`` configures one in code instead; sent as ``x-api-key``;
    - ``version``: the ``anthropic-version`` header; ``headers``: sent with
      every request; ``max_tokens``: the default when a call gives none;
    - ``timeout``, ``priority``, ``models``, ``prefixes``, ``transport``: as
      for :class:`providers.OpenAICompatible`.
    """

    name: str = "anthropic"
    base_url: str = ANTHROPIC_BASE_URL
    key_env: str | None = "ANTHROPIC_API_KEY"
    api_key: Secret | None = attrs.field(default=None, repr=False)
    version: str = ANTHROPIC_VERSION
    headers: Mapping[str, str] = _EMPTY
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout: float | None = None
    priority: int = 10
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ("claude-",)
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return CHAT

    def key(self, request: Request) -> str | None:
        """Per call, else configured, else the environment; raises if absent."""
        env = (self.key_env,) if self.key_env else ()
        return api_key(request, self.api_key, env, required=bool(env), provider=self.name)

    def url(self, request: Request) -> str:
        return (request.api_base or self.base_url).rstrip("/") + "/v1/messages"

    def build(self, request: Request) -> httpx.Request:
        key = self.key(request)
        params = dict(request.params)
        extra_headers = params.pop("extra_headers", None) or {}
        body = chat_body(request, params, self.max_tokens)
        headers = {**self.headers, "anthropic-version": request.api_version or self.version}
        if key:
            headers["x-api-key"] = key
        return httpx.Request(
            "POST",
            self.url(request),
            headers={**headers, **extra_headers},
            json=body,
            extensions=timeout_extensions(self.timeout),
        )

    def parse(self, request: Request, response: httpx.Response) -> ChatResponse:
        with parsing(request):
            return message_response(request, read_json(request, response))

    def stream_decoder(self, request: Request) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from_body(request, response)


ANTHROPIC = AnthropicMessages()
