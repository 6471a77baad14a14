"""Cohere's v2 API: ``/v2/chat`` (named SSE events) and ``/v2/embed``.

- **Key**: the per-call ``api_key``, else the adapter's, else ``CO_API_KEY``
  (the official SDK's variable), else ``COHERE_API_KEY``; sent as
  ``Authorization: Bearer``. None at all is an ``AuthenticationError`` before
  any I/O. **Server**: ``api_base`` or ``https://api.cohere.com`` (its root,
  without ``/v2``).
- **Chat requests**: messages keep their roles (``developer`` is ``system``);
  assistant tool calls go as v2 ``tool_calls`` (arguments a JSON string) with
  the reply's ``reasoning_content`` as ``tool_plan``; tool results go as
  ``tool`` messages with ``tool_call_id``. ``top_p``/``top_k``/``stop`` become
  ``p``/``k``/``stop_sequences``; ``tool_choice`` ``"required"``/``"none"``
  become ``REQUIRED``/``NONE`` (Cohere cannot force one named tool);
  ``response_format`` becomes ``{"type": "json_object", "json_schema": ...}``.
  Other parameters (``documents``, ``safety_mode``, ``thinking``...) pass through.
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

import json
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from pipeline import errors
from pipeline._request import Endpoint, Request
from pipeline._responses import AnyResponse
from pipeline._secrets import Secret, scrub
from pipeline.adapter import parsing, status_error
from providers._credentials import api_key
from providers.cohere.request import _BODIES
from providers.cohere.response import _PARSERS, error_class
from providers.cohere.stream import CohereStreamDecoder
from providers.openai_compatible import CHAT_EMBEDDING

__all__ = ["COHERE", "DEFAULT_BASE_URL", "KEY_ENVS", "Cohere", "CohereStreamDecoder"]

DEFAULT_BASE_URL = "https://api.cohere.com"
KEY_ENVS = ("CO_API_KEY", "COHERE_API_KEY")

_PATHS: dict[str, str] = {"chat": "/v2/chat", "embedding": "/v2/embed"}

# -- the adapter ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Cohere:
    """Cohere's v2 API. See the module docstring."""

    name: str = "cohere"
    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = attrs.field(default=None, repr=False)
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = (
        "command-",
        "embed-english",
        "embed-multilingual",
        "embed-v4",
        "c4ai-",
    )
    priority: int = 0
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    def configured_key(self, request: Request) -> str | None:
        """Per call, else configured, else ``CO_API_KEY``/``COHERE_API_KEY``."""
        return api_key(request, self.api_key, KEY_ENVS, required=False)

    def key(self, request: Request) -> str:
        """The key to send; none at all is an AuthenticationError naming the variables."""
        found = api_key(request, self.api_key, KEY_ENVS, provider=self.name)
        assert found is not None  # required: api_key raised otherwise
        return found

    def build(self, request: Request) -> httpx.Request:
        params = dict(request.params)
        extra_headers: Mapping[str, str] = params.pop("extra_headers", None) or {}
        extra_body: Mapping[str, Any] = params.pop("extra_body", None) or {}
        key = self.key(request)
        body = _BODIES[request.endpoint](request, params)
        body.update(extra_body)
        return httpx.Request(
            "POST",
            (request.api_base or self.base_url).rstrip("/") + _PATHS[request.endpoint],
            json=body,
            headers={"authorization": f"Bearer {key}", **extra_headers},
        )

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            return _PARSERS[request.endpoint](request, response)

    def stream_decoder(self, request: Request) -> CohereStreamDecoder:
        key = self.configured_key(request)
        return CohereStreamDecoder(request, (key,) if key else ())

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str):
            message = response.text[:500]
        message = scrub(message, [self.configured_key(request)])  # a key the server echoed
        return status_error(
            request, response, message, cls=error_class(message, response.status_code)
        )


COHERE = Cohere()
