"""dispatchline's core: requests, responses, streams, errors, the chain and its terminal.

>>> from pipeline import Pipeline
>>> pipe = Pipeline.default()
>>> resp = pipe.completion("mock/echo", [{"role": "user", "content": "hi"}])

The module also offers every endpoint over a lazily built default pipeline
(``Pipeline.default()``): ``await pipeline.acompletion(...)``,
``pipeline.completion(...)`` and so on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

from pipeline import errors
from pipeline._chain import Handler, Middleware
from pipeline._dispatch import Result, UpstreamStatusError
from pipeline._pipeline import Pipeline
from pipeline._request import Request
from pipeline._responses import (
    Attempt,
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    ImageResponse,
    Response,
    SpeechResponse,
    StreamAccumulator,
    TranscriptionResponse,
    Usage,
)
from pipeline._secrets import Secret, scrub
from pipeline._streams import Stream, SyncStream, observe

__all__ = [
    "Attempt",
    "ChatChunk",
    "ChatResponse",
    "EmbeddingResponse",
    "Handler",
    "ImageResponse",
    "Middleware",
    "Pipeline",
    "Request",
    "Response",
    "Result",
    "Secret",
    "SpeechResponse",
    "Stream",
    "StreamAccumulator",
    "SyncStream",
    "TranscriptionResponse",
    "UpstreamStatusError",
    "Usage",
    "acompletion",
    "aembedding",
    "aimage_generation",
    "aspeech",
    "atranscription",
    "completion",
    "default_pipeline",
    "embedding",
    "errors",
    "image_generation",
    "observe",
    "scrub",
    "speech",
    "transcription",
]

# Names this package exported before its surface was trimmed to what users
# call, and where each lives now. Still found, with a DeprecationWarning.
_MOVED = {
    "ENDPOINTS": "pipeline.adapter",
    "Endpoint": "pipeline.adapter",
    "AnyResponse": "pipeline.adapter",
    "Choice": "pipeline.adapter",
    "ChunkChoice": "pipeline.adapter",
    "Delta": "pipeline.adapter",
    "Embedding": "pipeline.adapter",
    "Function": "pipeline.adapter",
    "FunctionDelta": "pipeline.adapter",
    "Image": "pipeline.adapter",
    "Message": "pipeline.adapter",
    "ToolCall": "pipeline.adapter",
    "ToolCallDelta": "pipeline.adapter",
    "AutoDetect": "pipeline._resolve",
    "resolve_target": "pipeline._resolve",
    "Dispatcher": "pipeline._dispatch",
    "ProviderStream": "pipeline._dispatch",
    "Registry": "pipeline._pipeline",
    "ObservedStream": "pipeline._streams",
    "bind": "pipeline._chain",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(
        f"pipeline.{name} is not part of the public surface: import it from {module}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)


_default: Pipeline | None = None
_default_lock = threading.Lock()


def default_pipeline() -> Pipeline:
    """The pipeline the module-level functions use, built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Pipeline.default()
    return _default


@overload
async def acompletion(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: Literal[False] = False,
    **kwargs: Any,
) -> ChatResponse: ...


@overload
async def acompletion(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: Literal[True],
    **kwargs: Any,
) -> Stream[ChatChunk]: ...


async def acompletion(
    model: str, messages: Sequence[Mapping[str, Any]], *, stream: bool = False, **kwargs: Any
) -> ChatResponse | Stream[ChatChunk]:
    return await default_pipeline().acompletion(model, messages, stream=stream, **kwargs)  # type: ignore[call-overload, no-any-return]


async def aembedding(model: str, input: Any, **kwargs: Any) -> EmbeddingResponse:
    return await default_pipeline().aembedding(model, input, **kwargs)


async def aimage_generation(model: str, prompt: str, **kwargs: Any) -> ImageResponse:
    return await default_pipeline().aimage_generation(model, prompt, **kwargs)


async def atranscription(model: str, file: Any, **kwargs: Any) -> TranscriptionResponse:
    return await default_pipeline().atranscription(model, file, **kwargs)


async def aspeech(model: str, input: str, **kwargs: Any) -> SpeechResponse:
    return await default_pipeline().aspeech(model, input, **kwargs)


@overload
def completion(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: Literal[False] = False,
    **kwargs: Any,
) -> ChatResponse: ...


@overload
def completion(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: Literal[True],
    **kwargs: Any,
) -> SyncStream[ChatChunk]: ...


def completion(
    model: str, messages: Sequence[Mapping[str, Any]], *, stream: bool = False, **kwargs: Any
) -> ChatResponse | SyncStream[ChatChunk]:
    return default_pipeline().completion(model, messages, stream=stream, **kwargs)  # type: ignore[call-overload, no-any-return]


def embedding(model: str, input: Any, **kwargs: Any) -> EmbeddingResponse:
    return default_pipeline().embedding(model, input, **kwargs)


def image_generation(model: str, prompt: str, **kwargs: Any) -> ImageResponse:
    return default_pipeline().image_generation(model, prompt, **kwargs)


def transcription(model: str, file: Any, **kwargs: Any) -> TranscriptionResponse:
    return default_pipeline().transcription(model, file, **kwargs)


def speech(model: str, input: str, **kwargs: Any) -> SpeechResponse:
    return default_pipeline().speech(model, input, **kwargs)
