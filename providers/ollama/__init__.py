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
  ``keep_alive``, ``format``, ``logprobs`` and ``top_logprobs`` go at the top
  level; every other parameter is a model option (``num_ctx``, ``top_k``,
  ``repeat_penalty``...) and goes into ``options``, as does an ``options`` dict.
  ``n``, ``tool_choice`` and ``parallel_tool_calls`` have no native
  counterpart: only the value Ollama always behaves as (1, ``"auto"``,
  ``True``) is accepted, anything else is an ``InvalidRequestError``.
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
from providers._credentials import api_key, first_env
from providers.ollama.request import _BODIES, server_url
from providers.ollama.response import (
    _PARSERS,
    OllamaStreamDecoder,
    created_from,
    error_class,
    finish_from,
    usage_from,
)
from providers.openai_compatible import CHAT_EMBEDDING

__all__ = [
    "BASE_URL_ENVS",
    "DEFAULT_BASE_URL",
    "KEY_ENV",
    "OLLAMA",
    "Ollama",
    "OllamaStreamDecoder",
    "created_from",
    "finish_from",
    "usage_from",
]

DEFAULT_BASE_URL = "http://localhost:11434"
BASE_URL_ENVS = ("OLLAMA_API_BASE", "OLLAMA_HOST")
KEY_ENV = "OLLAMA_API_KEY"

_PATHS: dict[str, str] = {"chat": "/api/chat", "embedding": "/api/embed"}

# -- the adapter ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Ollama:
    """An Ollama server, through its native API. See the module docstring."""

    name: str = "ollama"
    base_url: str | None = None
    api_key: Secret | None = attrs.field(default=None, repr=False)
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    priority: int = 0
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    def url(self, request: Request) -> str:
        base = request.api_base or self.base_url
        if not base:
            found = first_env(BASE_URL_ENVS)
            base = server_url(found) if found else DEFAULT_BASE_URL
        return base.rstrip("/") + _PATHS[request.endpoint]

    def key(self, request: Request) -> str | None:
        """Optional: per call, else configured, else ``OLLAMA_API_KEY`` (Ollama Cloud)."""
        return api_key(request, self.api_key, (KEY_ENV,), required=False)

    def build(self, request: Request) -> httpx.Request:
        params = dict(request.params)
        extra_headers: Mapping[str, str] = params.pop("extra_headers", None) or {}
        extra_body: Mapping[str, Any] = params.pop("extra_body", None) or {}
        body = _BODIES[request.endpoint](request, params)
        body.update(extra_body)
        key = self.key(request)
        auth = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Request(
            "POST", self.url(request), json=body, headers={**auth, **extra_headers}
        )

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            return _PARSERS[request.endpoint](request, response)

    def stream_decoder(self, request: Request) -> OllamaStreamDecoder:
        key = self.key(request)
        return OllamaStreamDecoder(request, (key,) if key else ())

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = None
        message = body.get("error") if isinstance(body, dict) else None
        if not isinstance(message, str):
            message = response.text[:500]
        message = scrub(message, [self.key(request)])  # a key the server echoed
        return status_error(
            request, response, message, cls=error_class(message, response.status_code)
        )


OLLAMA = Ollama()
