"""The Pipeline: builds requests, runs them through the bound chain, async and sync.

Its lifetime (closing, ``async with`` / ``with``) is in :mod:`pipeline._lifetime`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import httpx

from pipeline import _validate as check
from pipeline import errors
from pipeline._chain import Handler, Middleware, bind, describe
from pipeline._dispatch import Dispatcher, Result
from pipeline._lifetime import Lifetime, closed_error
from pipeline._request import Endpoint, Request
from pipeline._resolve import ProviderNames, resolve_target
from pipeline._responses import (
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    ImageResponse,
    SpeechResponse,
    TranscriptionResponse,
)
from pipeline._secrets import Secret
from pipeline._streams import Stream, SyncStream
from pipeline._sync import LoopThread

if TYPE_CHECKING:
    from pipeline.adapter import Adapter


class Registry(ProviderNames, Protocol):
    """What a pipeline needs of a provider registry (``providers.ProviderRegistry``)."""

    @property
    def adapters(self) -> Mapping[str, Adapter]: ...


def _default_registry() -> Registry:
    # pipeline never imports providers at import time: the default registry is
    # looked up here, when a pipeline without one is built.
    providers = importlib.import_module("providers")
    return providers.default_registry()  # type: ignore[no-any-return]


_EMPTY: Mapping[str, Any] = {}


class Pipeline(Lifetime):
    """A bound chain of middlewares ending in the dict-dispatch terminal.

    ``middlewares`` are ``async (request, call_next)`` callables, outermost
    first. The chain is bound here, once; afterwards the pipeline is frozen.
    ``http_client`` is used as given and left open for its owner to close; a
    pipeline that made its own client closes it in :meth:`aclose`.
    ``drop_params=True`` drops (and logs) an OpenAI parameter a provider cannot
    honour instead of refusing the call; a call's own ``drop_params=`` wins.
    """

    __slots__ = (
        "_claims",
        "_closed",
        "_dispatcher",
        "_drop_params",
        "_frozen",
        "_handler",
        "_lifespan",
        "_loop",
        "_middlewares",
        "_registry",
        "_secret",
        "_sync_lifespan",
    )

    def __init__(
        self,
        middlewares: Sequence[Middleware] = (),
        *,
        registry: Registry | None = None,
        http_client: httpx.AsyncClient | None = None,
        sync_backend: Literal["asyncio", "trio"] = "asyncio",
        drop_params: bool = False,
    ) -> None:
        self._middlewares = tuple(middlewares)
        for layer in self._middlewares:
            if not callable(layer):
                raise TypeError(f"middleware {layer!r} is not callable")
        # Layers that resolve names of their own (a router's group names) offer
        # ``claim_model(model, *, endpoint, params, metadata) -> (provider, model) | None``.
        claims = (getattr(layer, "claim_model", None) for layer in self._middlewares)
        self._claims = tuple(claim for claim in claims if claim is not None)
        self._registry = registry if registry is not None else _default_registry()
        self._dispatcher = Dispatcher(self._registry.adapters, http_client)
        self._handler: Handler = bind(self._middlewares, self._dispatcher)
        self._drop_params = drop_params
        self._loop = LoopThread(sync_backend)
        self._lifespan: AsyncExitStack | None = None
        self._sync_lifespan: AbstractContextManager[Pipeline] | None = None
        self._closed = False
        self._secret: Secret | None = None  # the last api_key= given, as a Secret
        self._frozen = True

    @classmethod
    def default(cls, **options: Any) -> Pipeline:
        """The recommended stack: Logging, Cache, Retry, ErrorMapping, and what you add.

        Outermost first: Logging, Telemetry, Stats, Callbacks, Cache, Fallback,
        Router, Budget(s), Costs, Retry, ErrorMapping; the optional ones only when
        given (``middlewares.default_stack`` says which options add what).
        Takes ``registry=``, ``http_client=``, ``sync_backend=`` and
        ``drop_params=`` like the constructor; every other option goes to
        ``middlewares.default_stack``.
        """
        own = ("registry", "http_client", "sync_backend", "drop_params")
        kwargs = {k: options.pop(k) for k in own if k in options}
        middlewares = importlib.import_module("middlewares")
        return cls(middlewares.default_stack(**options), **kwargs)

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError("a Pipeline is frozen once built; build a new one instead")
        object.__setattr__(self, name, value)

    @property
    def middlewares(self) -> tuple[Middleware, ...]:
        return self._middlewares

    @property
    def registry(self) -> Registry:
        return self._registry

    def __repr__(self) -> str:
        layers = [describe(layer) for layer in self._middlewares]
        return f"Pipeline({' -> '.join([*layers, repr(self._dispatcher)])})"

    # -- building requests -------------------------------------------------

    def request(
        self,
        endpoint: Endpoint,
        model: str,
        *,
        provider: str | None = None,
        messages: Sequence[Mapping[str, Any]] = (),
        input: Any = None,
        stream: bool = False,
        api_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        timeout: float | None = None,
        cache: Any = None,
        metadata: Mapping[str, Any] | None = None,
        drop_params: bool | None = None,
        params: Mapping[str, Any] = _EMPTY,
    ) -> Request:
        """Resolve and validate a call into a :class:`Request`; no I/O."""
        claimed = self._claim(endpoint, model, provider, params, metadata)
        name, model_name = claimed or resolve_target(self._registry, model, provider)
        if not isinstance(stream, bool):
            raise errors.InvalidRequestError(f"stream must be a bool, got {stream!r}")
        if timeout is not None and (not check.is_number(timeout) or timeout <= 0):
            raise errors.InvalidRequestError(f"timeout must be a positive number, got {timeout!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise errors.InvalidRequestError("api_key must be a non-empty string")
        check.check_params(params)
        options: dict[str, Any] = {}
        if cache is not None:
            options["cache"] = cache
        if metadata is not None:
            options["metadata"] = metadata
        if drop_params if drop_params is not None else self._drop_params:
            options["drop_params"] = True  # what a provider cannot honour is dropped, and logged
        request = Request(
            endpoint=endpoint,
            provider=name,
            model=model_name,
            messages=messages,
            input=input,
            params=params,
            stream=stream,
            api_key=self._secret_for(api_key) if api_key is not None else None,
            api_base=api_base,
            api_version=api_version,
            timeout=timeout,
            options=options or _EMPTY,
        )
        if claimed is None:
            self._dispatcher.adapter_for(request)  # unknown provider / endpoint: before any I/O
        return request

    def _secret_for(self, api_key: str) -> Secret:
        """``Secret(api_key)``; the same one as last time for the same key, so what it
        works out once (its fingerprint, for the cache's namespace) is not redone."""
        last = self._secret
        if last is not None and last.reveal() == api_key:
            return last
        secret = Secret(api_key)
        object.__setattr__(self, "_secret", secret)
        return secret

    def _claim(
        self,
        endpoint: Endpoint,
        model: object,
        provider: str | None,
        params: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
    ) -> tuple[str, str] | None:
        """``(provider, model)`` when a layer routes this name itself, else None."""
        if provider is None and isinstance(model, str):
            for claim in self._claims:
                found = claim(model, endpoint=endpoint, params=params, metadata=metadata)
                if found is not None:
                    return found  # type: ignore[no-any-return]
        return None

    async def send(self, request: Request) -> Result:
        """Run an already built request through the chain."""
        if self._closed:
            raise closed_error()
        start = time.perf_counter()
        result = await self._handler(request)
        result.latency = time.perf_counter() - start
        return result

    # -- async endpoints ---------------------------------------------------

    @overload
    async def acompletion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[False] = False,
        **kwargs: Any,
    ) -> ChatResponse: ...

    @overload
    async def acompletion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> Stream[ChatChunk]: ...

    async def acompletion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> ChatResponse | Stream[ChatChunk]:
        """Chat completion; ``stream=True`` gives a :class:`Stream` of chunks."""
        check.check_messages(messages)
        return await self.send(self._build("chat", model, kwargs, messages=messages, stream=stream))  # type: ignore[return-value]

    async def aembedding(self, model: str, input: Any, **kwargs: Any) -> EmbeddingResponse:
        check.check_embedding_input(input)
        return await self.send(self._build("embedding", model, kwargs, input=input))  # type: ignore[return-value]

    async def aimage_generation(self, model: str, prompt: str, **kwargs: Any) -> ImageResponse:
        check.check_text("prompt", prompt)
        return await self.send(self._build("image", model, kwargs, input=prompt))  # type: ignore[return-value]

    async def atranscription(self, model: str, file: Any, **kwargs: Any) -> TranscriptionResponse:
        check.check_audio_file(file)
        return await self.send(self._build("transcription", model, kwargs, input=file))  # type: ignore[return-value]

    async def aspeech(self, model: str, input: str, **kwargs: Any) -> SpeechResponse:
        check.check_text("input", input)
        return await self.send(self._build("speech", model, kwargs, input=input))  # type: ignore[return-value]

    _CALL_OPTIONS = frozenset(
        {
            "provider",
            "api_key",
            "api_base",
            "api_version",
            "timeout",
            "cache",
            "metadata",
            "drop_params",
        }
    )

    def _build(
        self, endpoint: Endpoint, model: str, kwargs: dict[str, Any], **fields: Any
    ) -> Request:
        options = {k: kwargs.pop(k) for k in self._CALL_OPTIONS.intersection(kwargs)}
        return self.request(endpoint, model, params=kwargs, **options, **fields)

    # -- sync twins --------------------------------------------------------

    def _sync(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        if self._closed:  # before the loop thread would start again
            raise closed_error()

        def run() -> Any:
            return method(*args, **kwargs)

        result = self._loop.call(run)
        if isinstance(result, Stream):
            return SyncStream(result, self._loop.portal())
        return result

    @overload
    def completion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[False] = False,
        **kwargs: Any,
    ) -> ChatResponse: ...

    @overload
    def completion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> SyncStream[ChatChunk]: ...

    def completion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> ChatResponse | SyncStream[ChatChunk]:
        """Blocking twin of :meth:`acompletion`; a stream is a plain iterator."""
        return self._sync(self.acompletion, model, messages, stream=stream, **kwargs)  # type: ignore[no-any-return]

    def embedding(self, model: str, input: Any, **kwargs: Any) -> EmbeddingResponse:
        return self._sync(self.aembedding, model, input, **kwargs)  # type: ignore[no-any-return]

    def image_generation(self, model: str, prompt: str, **kwargs: Any) -> ImageResponse:
        return self._sync(self.aimage_generation, model, prompt, **kwargs)  # type: ignore[no-any-return]

    def transcription(self, model: str, file: Any, **kwargs: Any) -> TranscriptionResponse:
        return self._sync(self.atranscription, model, file, **kwargs)  # type: ignore[no-any-return]

    def speech(self, model: str, input: str, **kwargs: Any) -> SpeechResponse:
        return self._sync(self.aspeech, model, input, **kwargs)  # type: ignore[no-any-return]
