"""A Pipeline's lifetime: closing it, and entering it with ``async with`` / ``with``.

Like httpx's clients: usable at once (clients are made on first use),
optionally entered with ``async with`` / ``with`` (which also enters every
middleware that is an async context manager), closed once, never reopened.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, AsyncExitStack
from types import TracebackType
from typing import Any, Self

from pipeline import errors
from pipeline._chain import Middleware
from pipeline._dispatch import Dispatcher
from pipeline._sync import LoopThread, in_event_loop


class Lifetime:
    """The lifetime part of :class:`~pipeline.Pipeline`, over the state it keeps."""

    __slots__ = ()

    _closed: bool
    _dispatcher: Dispatcher
    _lifespan: AsyncExitStack | None
    _loop: LoopThread
    _middlewares: tuple[Middleware, ...]
    _sync_lifespan: AbstractContextManager[Any] | None

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the HTTP clients this pipeline made (an injected one stays open),
        each on the event loop it belongs to, and stop the sync facade's loop
        thread. Safe to call twice; using the pipeline afterwards raises
        :class:`errors.PipelineClosedError`."""
        if self._closed:
            return
        object.__setattr__(self, "_closed", True)
        await self._dispatcher.aclose()
        if self._loop.running and not self._loop.is_current():
            from anyio.to_thread import run_sync

            await run_sync(self._loop.stop)

    def close(self) -> None:
        """Sync twin of :meth:`aclose`, for code that runs no event loop."""
        if in_event_loop():
            raise errors.SyncInEventLoopError(
                "Pipeline.close() was called inside a running event loop; await aclose()"
            )
        if not self._closed:
            if self._loop.running:
                self._loop.call(self.aclose)
            else:
                object.__setattr__(self, "_closed", True)
                self._dispatcher.close()
        self._loop.stop()

    async def __aenter__(self) -> Self:
        """Enter every middleware that is an async context manager, outermost first
        (a middleware that runs background work owns its task group there); they
        are exited, innermost first, when the block ends, then the pipeline closes."""
        if self._closed:
            raise closed_error()
        if self._lifespan is not None:
            raise RuntimeError("this pipeline is already open in an `async with` block")
        stack = AsyncExitStack()
        async with stack:
            for layer in self._middlewares:
                if hasattr(layer, "__aenter__") and hasattr(layer, "__aexit__"):
                    await stack.enter_async_context(layer)  # type: ignore[arg-type]
            object.__setattr__(self, "_lifespan", stack.pop_all())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._lifespan
        object.__setattr__(self, "_lifespan", None)
        try:
            if stack is not None:
                await stack.__aexit__(exc_type, exc, tb)
        finally:
            await self.aclose()

    def __enter__(self) -> Self:
        """Sync twin of ``async with``: middlewares that are async context managers
        are entered on the sync facade's loop thread, in one task that lives
        until ``__exit__`` (so background callbacks work from sync code too)."""
        if self._closed:
            raise closed_error()
        if any(hasattr(layer, "__aenter__") for layer in self._middlewares):
            lifespan = self._loop.portal().wrap_async_context_manager(self)
            lifespan.__enter__()
            object.__setattr__(self, "_sync_lifespan", lifespan)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lifespan = self._sync_lifespan
        object.__setattr__(self, "_sync_lifespan", None)
        try:
            if lifespan is not None:
                lifespan.__exit__(exc_type, exc, tb)  # closes the pipeline on its loop thread
        finally:
            self.close()


def closed_error() -> errors.PipelineClosedError:
    return errors.PipelineClosedError(
        "this pipeline has been closed; build a new one (a closed pipeline does not reopen)"
    )
