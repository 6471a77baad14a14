"""The adapter every OpenAI-speaking provider is a row of: :class:`OpenAICompatible`.

A provider that speaks OpenAI's API is a configured :class:`OpenAICompatible`:
its base URL, key variable, headers, capabilities and auto-detect prefixes.
The bodies and replies themselves are OpenAI's wire format
(:mod:`providers.openai_wire`, and :mod:`providers.openai_audio` for
transcription uploads and speech).

Choices worth knowing:

- Embeddings: nothing is added to the request, so the server answers with
  float arrays (as every compatible server does). Pass
  ``encoding_format="base64"`` for bodies about half the size; either way the
  response holds plain ``list[float]`` vectors (base64 is decoded).
- Parameters whose names are in :attr:`OpenAICompatible.control_params`
  (``extra_headers``) shape the HTTP request, never the JSON body;
  ``extra_body`` (as in the openai SDK) is merged into the body last.
- A base URL may hold ``{ENV_NAME}`` placeholders (an account id, say), filled
  from the environment when the request is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import httpx

from pipeline import errors
from pipeline._request import Endpoint, Request
from pipeline._responses import AnyResponse, ChatResponse
from pipeline._secrets import Secret
from pipeline.adapter import parsing, read_json, timeout_extensions
from providers._credentials import api_key
from providers.openai_audio import speech_response, transcription_content, transcription_response
from providers.openai_wire import (
    OpenAIStreamDecoder,
    chat_response,
    embedding_response,
    error_from,
    image_response,
)

ALL_ENDPOINTS: frozenset[Endpoint] = frozenset(
    {"chat", "embedding", "image", "transcription", "speech"}
)
CHAT: frozenset[Endpoint] = frozenset({"chat"})
CHAT_EMBEDDING: frozenset[Endpoint] = frozenset({"chat", "embedding"})

_PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "embedding": "/embeddings",
    "image": "/images/generations",
    "transcription": "/audio/transcriptions",
    "speech": "/audio/speech",
}

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """A JSON body; ``extra_body`` (as in the openai SDK) is merged in last."""
    extra = body.pop("extra_body", None)
    if extra:
        body.update(extra)
    return {"json": body}


@attrs.frozen(kw_only=True)
class OpenAICompatible:
    """One OpenAI-compatible provider. A row of the table is one of these.

    - ``base_url``: up to and including the version segment (``.../v1``); it
      may hold ``{ENV_NAME}`` placeholders, filled from the environment;
    - ``base_url_env``: an environment variable that, when set, replaces
      ``base_url`` (a per-call ``api_base`` wins over both);
    - ``key_env``: the environment variable holding the key (None: no key,
      as for local servers); ``api_key`` configures one in code instead;
    - ``headers``: sent with every request; ``endpoints``: what it offers;
    - ``timeout``: default seconds per request (None: the pipeline's);
    - ``models``/``prefixes``/``priority``: bare model names it claims;
    - ``stream_usage``: ask for usage in streams (``stream_options``); off
      for servers that reject the option;
    - ``transport``: its own httpx transport instead of the pipeline's pool.

    Subclasses change how a request is addressed and authenticated by
    overriding :meth:`url`, :meth:`auth_headers` and :meth:`model_field`
    (Azure does); the body builders and parsers stay shared.
    """

    # Parameters that shape the HTTP request rather than the JSON body.
    control_params: ClassVar[frozenset[str]] = frozenset({"extra_headers"})

    name: str
    base_url: str
    base_url_env: str | None = None
    key_env: str | None = None
    api_key: Secret | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = _EMPTY
    endpoints: frozenset[Endpoint] = CHAT
    timeout: float | None = None
    priority: int = 0
    models: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    stream_usage: bool = True
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)

    # -- credentials and URLs ----------------------------------------------

    def key(self, request: Request) -> str | None:
        """Per call, else configured, else the environment; raises if required and absent."""
        env = (self.key_env,) if self.key_env else ()
        return api_key(request, self.api_key, env, required=bool(env), provider=self.name)

    def auth_headers(self, request: Request) -> dict[str, str]:
        key = self.key(request)
        return {"authorization": f"Bearer {key}"} if key else {}

    def base(self, request: Request) -> str:
        """Per-call ``api_base``, else ``base_url_env`` when set, else ``base_url``."""
        if request.api_base:
            return request.api_base.rstrip("/")
        if self.base_url_env:
            value = os.environ.get(self.base_url_env)
            if value:
                return value.rstrip("/")
        return fill_env(self.base_url, request).rstrip("/")

    def url(self, request: Request) -> str:
        return self.base(request) + _PATHS[request.endpoint]

    def model_field(self, request: Request) -> dict[str, str]:
        """The ``model`` the body names (a subclass that addresses the model in
        its URL may leave it out)."""
        return {"model": request.model}

    # -- build -------------------------------------------------------------

    def build(self, request: Request) -> httpx.Request:
        params = {k: v for k, v in request.params.items() if k not in self.control_params}
        extra_headers = request.params.get("extra_headers") or {}
        headers = {**self.headers, **self.auth_headers(request), **extra_headers}
        content = _BODIES[request.endpoint](self, request, params)
        return httpx.Request(
            "POST",
            self.url(request),
            headers=headers,
            extensions=timeout_extensions(self.timeout),
            **content,
        )

    def _chat_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.model_field(request),
            "messages": list(request.messages),
            **params,
        }
        if request.stream:
            body["stream"] = True
            if self.stream_usage:
                body.setdefault("stream_options", {"include_usage": True})
        return _json(body)

    def _input_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return _json({**self.model_field(request), "input": request.input, **params})

    def _image_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return _json({**self.model_field(request), "prompt": request.input, **params})

    def _transcription_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return transcription_content(request, dict(self.model_field(request)), params)

    # -- parse -------------------------------------------------------------

    def parse(self, request: Request, response: httpx.Response) -> AnyResponse:
        with parsing(request):
            return _PARSERS[request.endpoint](request, response)

    # -- streams and errors ------------------------------------------------

    def stream_decoder(self, request: Request) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from(request, response)


def _parse_chat(request: Request, response: httpx.Response) -> ChatResponse:
    return chat_response(request, read_json(request, response))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_env(template: str, request: Request) -> str:
    """``template`` with each ``{NAME}`` replaced by the environment variable NAME;
    an unset one is an :class:`errors.InvalidRequestError` naming it, before any I/O."""

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if not found:
            raise errors.InvalidRequestError(
                f"{request.provider} needs {match.group(1)} set (it is part of the "
                f"base URL {template}), or pass api_base=",
                provider=request.provider,
                model=request.model,
            )
        return found

    return _PLACEHOLDER.sub(value, template)


_BODIES: dict[str, Callable[[OpenAICompatible, Request, dict[str, Any]], dict[str, Any]]] = {
    "chat": OpenAICompatible._chat_body,
    "embedding": OpenAICompatible._input_body,
    "image": OpenAICompatible._image_body,
    "transcription": OpenAICompatible._transcription_body,
    "speech": OpenAICompatible._input_body,
}

_PARSERS: dict[str, Callable[[Request, httpx.Response], AnyResponse]] = {
    "chat": _parse_chat,
    "embedding": embedding_response,
    "image": image_response,
    "transcription": transcription_response,
    "speech": speech_response,
}
