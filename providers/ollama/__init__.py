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

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import httpx

from pipeline.adapter import (
    CHAT_EMBEDDING,
    ChatResponse,
    EmbeddingResponse,
    Endpoint,
    HTTPAdapter,
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

    def base(self, request: Request) -> str:
        """Per call, else configured, else the environment, else the local default."""
        base = request.api_base or self.base_url
        if not base:
            found = first_env(self.base_url_envs)
            base = server_url(found) if found else DEFAULT_BASE_URL
        return base.rstrip("/")

    def chat_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return chat_body(request, params)

    def embedding_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return embed_body(request, params)

    def parse_chat(self, request: Request, response: httpx.Response) -> ChatResponse:
        return parse_chat(request, response)

    def parse_embedding(self, request: Request, response: httpx.Response) -> EmbeddingResponse:
        return parse_embedding(request, response)

    def stream_decoder(self, request: Request) -> OllamaStreamDecoder:
        return OllamaStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from(request, response)


OLLAMA = Ollama()
