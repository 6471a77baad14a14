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
- ``extra_headers`` shape the HTTP request, never the JSON body;
  ``extra_body`` (as in the openai SDK) is merged into the body last.
- Every OpenAI parameter is sent as given unless the row's ``params`` says
  otherwise (Mistral renames ``seed``, Groq refuses ``logprobs``...); a
  ``developer`` message is sent as ``system`` unless the row's ``roles`` keep
  it (OpenAI's own row does): a system message means the same to every
  server, and many have no developer role.
- A base URL may hold ``{ENV_NAME}`` placeholders (an account id, say), filled
  from the environment when the request is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import httpx

from pipeline.adapter import (
    ALL_ENDPOINTS,
    CHAT,
    CHAT_EMBEDDING,
    ChatResponse,
    EmbeddingResponse,
    Endpoint,
    HTTPAdapter,
    ImageResponse,
    ParamPolicy,
    Request,
    SpeechResponse,
    TranscriptionResponse,
    errors,
    first_env,
    read_json,
)
from providers.openai_audio import speech_response, transcription_response, transcription_upload
from providers.openai_wire import (
    OpenAIStreamDecoder,
    chat_response,
    embedding_response,
    error_from,
    image_response,
)

__all__ = [
    "ALL_ENDPOINTS",
    "CHAT",
    "CHAT_EMBEDDING",
    "DEVELOPER_AS_SYSTEM",
    "SPEAKS_OPENAI",
    "OpenAICompatible",
    "fill_env",
]

_PATHS: Mapping[str, str] = MappingProxyType(
    {
        "chat": "/chat/completions",
        "embedding": "/embeddings",
        "image": "/images/generations",
        "transcription": "/audio/transcriptions",
        "speech": "/audio/speech",
    }
)

# A server that speaks OpenAI's API takes every OpenAI parameter as is.
SPEAKS_OPENAI: Mapping[str, ParamPolicy] = MappingProxyType(
    {
        "chat": ParamPolicy(endpoint="chat", others="send"),
        "embedding": ParamPolicy(endpoint="embedding", others="send"),
    }
)
# Roles sent under another name: most compatible servers have no developer role.
DEVELOPER_AS_SYSTEM: Mapping[str, str] = MappingProxyType({"developer": "system"})


@attrs.frozen(kw_only=True)
class OpenAICompatible(HTTPAdapter):
    """One OpenAI-compatible provider. A row of the table is one of these.

    Besides the settings every adapter has (:class:`pipeline.adapter.HTTPAdapter`):

    - ``base_url``: up to and including the version segment (``.../v1``); it
      may hold ``{ENV_NAME}`` placeholders, filled from the environment;
      ``base_url_envs``: variables that, when set, replace it;
    - ``key_envs``: empty for a server that needs no key (local servers);
    - ``params``: per endpoint, what the server does with OpenAI's parameters
      (default: takes them all); ``roles``: message roles it knows under
      another name (default: ``developer`` is sent as ``system``);
    - ``stream_usage``: ask for usage in streams (``stream_options``); off
      for servers that reject the option.

    Subclasses change how a request is addressed and authenticated by
    overriding :meth:`url`, :meth:`auth_headers`, :meth:`model_field` and
    :meth:`roles_for` (Azure does); the bodies and parsers stay shared.
    """

    endpoints: frozenset[Endpoint] = CHAT
    params: Mapping[str, ParamPolicy] = SPEAKS_OPENAI
    roles: Mapping[str, str] = DEVELOPER_AS_SYSTEM
    stream_usage: bool = True

    paths: ClassVar[Mapping[str, str]] = _PATHS

    def base(self, request: Request) -> str:
        """Per-call ``api_base``, else the first set ``base_url_envs``, else ``base_url``."""
        found = request.api_base or first_env(self.base_url_envs)
        return (found or fill_env(self.base_url, request)).rstrip("/")

    def model_field(self, request: Request) -> dict[str, str]:
        """The ``model`` the body names (a subclass that addresses the model in
        its URL may leave it out)."""
        return {"model": request.model}

    def roles_for(self, request: Request) -> Mapping[str, str]:
        """Message roles sent under another name for this request."""
        return self.roles

    # -- bodies ------------------------------------------------------------

    def messages(self, request: Request) -> list[Any]:
        roles = self.roles_for(request)
        if not roles:
            return list(request.messages)
        return [
            {**message, "role": roles[message["role"]]} if message.get("role") in roles else message
            for message in request.messages
        ]

    def chat_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.model_field(request),
            "messages": self.messages(request),
            **params,
        }
        if request.stream:
            body["stream"] = True
            if self.stream_usage:
                body.setdefault("stream_options", {"include_usage": True})
        return body

    def embedding_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.model_field(request), "input": request.input, **params}

    def image_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.model_field(request), "prompt": request.input, **params}

    speech_body = embedding_body

    def transcription_content(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        """Multipart, not JSON: the audio file plus form fields."""
        return transcription_upload(request, dict(self.model_field(request)), params)

    # -- replies -----------------------------------------------------------

    def parse_chat(self, request: Request, response: httpx.Response) -> ChatResponse:
        return chat_response(request, read_json(request, response))

    def parse_embedding(self, request: Request, response: httpx.Response) -> EmbeddingResponse:
        return embedding_response(request, response)

    def parse_image(self, request: Request, response: httpx.Response) -> ImageResponse:
        return image_response(request, response)

    def parse_transcription(
        self, request: Request, response: httpx.Response
    ) -> TranscriptionResponse:
        return transcription_response(request, response)

    def parse_speech(self, request: Request, response: httpx.Response) -> SpeechResponse:
        return speech_response(request, response)

    def stream_decoder(self, request: Request) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from(request, response)


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
