"""Google's Gemini API (AI Studio, ``generativelanguage`` v1beta), natively.

Requests and replies keep OpenAI's shape on our side; this module converts.

- **URLs**: ``{api_base}/{api_version}/models/{model}:generateContent``;
  streams use ``:streamGenerateContent?alt=sse``; embeddings use
  ``:batchEmbedContents`` for a list input and ``:embedContent`` for one string.
  The default base is ``https://generativelanguage.googleapis.com`` and the
  default version ``v1beta`` (``api_version="v1"`` picks the stable surface).
  A model named with a slash (``tunedModels/my-model``) is used as the path as is.
- **Key**: the ``x-goog-api-key`` header, from ``api_key=``, else the adapter's
  configured key, else ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``.
- **Messages**: system and developer messages are lifted, in order, into
  ``systemInstruction``; user and assistant become ``user``/``model`` contents;
  image parts (``data:`` URLs become ``inlineData``, other URLs ``fileData``),
  ``input_audio`` and ``file`` parts (``file_data`` as a ``data:`` URL) are
  converted; assistant ``tool_calls`` become ``functionCall`` parts (arguments
  parsed into ``args``); consecutive ``tool`` messages become one ``user``
  content of ``functionResponse`` parts, named after the assistant call with
  the same id, with the tool's text sent as ``{"output": text}``.
- **Parameters**: ``temperature``, ``top_p``, ``top_k``, ``max_tokens`` /
  ``max_completion_tokens``, ``stop``, ``n``, ``seed``, ``presence_penalty``,
  ``frequency_penalty`` and ``response_format`` go into ``generationConfig``
  (a JSON schema is sent as ``responseJsonSchema``, which takes JSON Schema
  as OpenAI users write it; ``responseSchema`` takes only an OpenAPI subset).
  ``tools`` become one ``functionDeclarations`` tool (``parameters`` sent as
  given); ``tool_choice`` becomes ``toolConfig.functionCallingConfig``. Any
  other parameter is a Gemini field sent as is (``safetySettings``,
  ``cachedContent``...), and a ``generationConfig`` parameter is merged under
  the converted entries (``generationConfig={"thinkingConfig":
  {"includeThoughts": True}}`` asks for thought summaries, which arrive as
  ``reasoning_content``). ``user`` has no Gemini field and is dropped;
  ``logprobs``, ``top_logprobs``, ``logit_bias``, ``parallel_tool_calls=False``
  and the rest :data:`CHAT_PARAMS` does not list are refused before any I/O
  (or dropped with ``drop_params``). An image's ``detail`` becomes
  ``generationConfig.mediaResolution`` (the highest asked, see
  :func:`providers.gemini.request.media_resolution`).
- **Tool call ids**: Gemini gives none, so each call gets a stable id derived
  from the response id, candidate, position, name and arguments.
- **Thought signatures**: a ``functionCall`` part may carry a
  ``thoughtSignature`` that must go back with the call on the next turn. It
  rides in the tool call id, which every OpenAI-shaped client already sends
  back: ``call_<24 hex>__ts_<signature as unpadded URL-safe base64>``. When the
  assistant message is sent again the signature is read back out of the id
  (padded, URL-safe, as Google's own SDK sends it). A tool call that carries
  ``extra_content.google.thought_signature`` (the shape of Google's
  OpenAI-compatible endpoint) is honoured too, and wins. Signatures on text
  parts, which Gemini accepts back but does not require, are not kept.
- **Replies**: text parts are ``content``, ``thought: true`` parts are
  ``reasoning_content``; ``finishReason`` maps STOP to ``stop`` (``tool_calls``
  when the candidate called functions), MAX_TOKENS to ``length``, the safety
  reasons to ``content_filter``, anything else to ``stop``. Usage: prompt =
  ``promptTokenCount``, completion = ``candidatesTokenCount`` +
  ``thoughtsTokenCount``, reasoning = ``thoughtsTokenCount``. A prompt blocked
  by ``promptFeedback`` is a ContentPolicyViolationError. Parts of other kinds
  (generated images, code execution) are not represented. Gemini sends no
  timestamp, so ``created`` is 0; ``model`` is the reply's ``modelVersion``.
- **Streams**: each event is a whole ``GenerateContentResponse``; text arrives
  as content deltas and each function call whole (id, name and all its
  arguments in one delta). Usage is cumulative in Gemini's events, so it is
  sent once, in a last chunk with no choices, as OpenAI does with
  ``include_usage``. The decoder also reads the framing used without
  ``alt=sse`` (a streamed JSON array), choosing by the body's first byte.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import httpx

from pipeline.adapter import (
    ADVISORY_PARAMS,
    CHAT_EMBEDDING,
    ChatResponse,
    EmbeddingResponse,
    Endpoint,
    HTTPAdapter,
    ParamPolicy,
    Request,
    errors,
    read_json,
)
from providers.gemini.errors import error_from
from providers.gemini.ids import tool_call_id
from providers.gemini.request import chat_body, embedding_body, model_path
from providers.gemini.response import chat_response, embedding_response
from providers.gemini.stream import GeminiStreamDecoder

__all__ = [
    "BASE_URL",
    "CHAT_PARAMS",
    "EMBEDDING_PARAMS",
    "GEMINI",
    "KEY_ENVS",
    "Gemini",
    "GeminiStreamDecoder",
    "tool_call_id",
]

# What generateContent and embedContent do with each OpenAI parameter (the rest: refused).
CHAT_PARAMS = ParamPolicy(
    translate={
        "temperature": "generationConfig.temperature",
        "top_p": "generationConfig.topP",
        "max_tokens": "generationConfig.maxOutputTokens",
        "max_completion_tokens": "generationConfig.maxOutputTokens",
        "stop": "generationConfig.stopSequences",
        "n": "generationConfig.candidateCount",
        "seed": "generationConfig.seed",
        "presence_penalty": "generationConfig.presencePenalty",
        "frequency_penalty": "generationConfig.frequencyPenalty",
        "response_format": "generationConfig.responseMimeType + responseJsonSchema",
        "tools": "tools.functionDeclarations",
        "tool_choice": "toolConfig.functionCallingConfig",
    },
    drop={"stream_options", *ADVISORY_PARAMS},
    fixed={"parallel_tool_calls": True, "logprobs": False, "modalities": ["text"]},
)
EMBEDDING_PARAMS = ParamPolicy(
    endpoint="embedding",
    rename={"dimensions": "outputDimensionality"},
    drop=ADVISORY_PARAMS,
    fixed={"encoding_format": "float"},
)

BASE_URL = "https://generativelanguage.googleapis.com"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

# Endpoint -> the model method (and query) a request calls.
_METHODS: Mapping[str, Callable[[Request], str]] = MappingProxyType(
    {
        "chat": lambda r: "streamGenerateContent?alt=sse" if r.stream else "generateContent",
        "embedding": lambda r: "embedContent" if isinstance(r.input, str) else "batchEmbedContents",
    }
)


@attrs.frozen(kw_only=True)
class Gemini(HTTPAdapter):
    """The Gemini API adapter. ``GEMINI`` below is the registered instance;
    build another (``Gemini(name="gemini-eu", base_url=...)``) for a proxy or
    a second account. Besides the settings every adapter has
    (:class:`pipeline.adapter.HTTPAdapter`), ``api_version`` is the URL's
    version segment (``v1beta``; ``api_version=`` per call overrides it)."""

    key_header: ClassVar[str] = "x-goog-api-key"
    key_prefix: ClassVar[str] = ""

    name: str = "gemini"
    base_url: str = BASE_URL
    key_envs: tuple[str, ...] = KEY_ENVS
    endpoints: frozenset[Endpoint] = CHAT_EMBEDDING
    params: Mapping[str, ParamPolicy] = MappingProxyType(
        {"chat": CHAT_PARAMS, "embedding": EMBEDDING_PARAMS}
    )
    priority: int = 10
    prefixes: tuple[str, ...] = (
        "gemini-",
        "gemma-3",
        "learnlm-",
        "text-embedding-004",
        "embedding-001",
    )
    api_version: str = "v1beta"

    def url(self, request: Request) -> str:
        version = request.api_version or self.api_version
        method = _METHODS[request.endpoint](request)
        return f"{self.base(request)}/{version}/{model_path(request)}:{method}"

    def chat_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return chat_body(request, params)

    def embedding_body(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return embedding_body(request, params)

    def parse_chat(self, request: Request, response: httpx.Response) -> ChatResponse:
        return chat_response(request, read_json(request, response))

    def parse_embedding(self, request: Request, response: httpx.Response) -> EmbeddingResponse:
        return embedding_response(request, read_json(request, response))

    def stream_decoder(self, request: Request) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(request)

    def parse_error(self, request: Request, response: httpx.Response) -> errors.DispatchError:
        return error_from(request, response)


GEMINI = Gemini()
