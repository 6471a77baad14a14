"""Hooks called as requests start and end: exactly once each, never breaking the request.

>>> from middlewares.callbacks import Callbacks
>>> layer = Callbacks(on_success=lambda request, response: print(response.usage))

Every hook is optional and may be a plain or an async function:

- ``on_request(request)``: before the rest of the chain runs;
- ``on_success(request, response)``: the request succeeded. For a stream,
  when it has been read to its end, with the :class:`pipeline.ChatResponse`
  its chunks add up to (content, tool calls, usage, ``cost`` when a Costs
  layer inside priced it; ``latency`` is the whole stream's duration);
- ``on_failure(request, exc)``: the request failed: it raised (before or
  in the middle of a stream), or it was stopped, in which case ``exc`` is a
  :class:`RequestCancelled` (cancelled, or its stream closed before the end),
  with the cancellation as its ``__cause__`` when there was one;
- ``on_stream_chunk(request, chunk)``: each chunk, as the caller gets it;
- ``on_stream_end(request, response, completed)``: a returned stream is
  over, whichever way; ``response`` is what arrived until then.

Per request, exactly one of ``on_success`` and ``on_failure`` is called, and
it is the last hook; ``on_stream_end`` is called once per returned stream,
just before it. Callbacks placed outside Retry and Fallback see a retried or
fallen-back request as the one request it is. A stream that is dropped
without being read to the end or closed calls no end hook: close streams
(``async with stream:``).

A hook that raises is logged (``callbacks.hook_failed`` on the
``"dispatchline"`` logger) and the request goes on. Hooks run inline by
default, so a slow async hook delays the caller by its own await; hooks
called because the request was cancelled run shielded from that
cancellation, so keep them short. With ``background=True`` the hooks run in
a task group the middleware owns, entered by ``async with pipeline:``: the
caller is not delayed, each request's hooks still run in order, and leaving
the ``async with`` waits for the pending ones. A request made with
``background=True`` outside ``async with pipeline:``, or on another event
loop than the one that entered it, raises :class:`BackgroundNotRunningError`
before anything else happens.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from middlewares._log import logger
from pipeline import (
    ChatChunk,
    ChatResponse,
    Handler,
    Request,
    Result,
    Stream,
    StreamAccumulator,
    observe,
)
from pipeline._loops import running_loop

__all__ = ["BackgroundNotRunningError", "Callbacks", "Hook", "RequestCancelled"]


Hook = Callable[..., Any]  # plain or async; what it returns (or awaits to) is ignored

_HOOKS = ("on_request", "on_success", "on_failure", "on_stream_chunk", "on_stream_end")


class RequestCancelled(Exception):
    """Handed to ``on_failure`` when a request was stopped rather than failing.

    ``__cause__`` is the cancellation exception, when there was one; a stream
    closed by its caller before the end has none.
    """


class BackgroundNotRunningError(RuntimeError):
    """``Callbacks(background=True)`` was used outside ``async with pipeline:``."""


async def _run(name: str, hook: Hook, args: tuple[Any, ...]) -> None:
    """Call one hook; an exception it raises is logged, never propagated."""
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        logger().error(
            "callbacks.hook_failed",
            hook=name,
            callback=getattr(hook, "__qualname__", repr(hook)),
            error=type(exc).__name__,
            exc_info=exc,
        )


class _Inline:
    """Runs hooks right away, in the caller's task."""

    __slots__ = ()

    async def fire(self, name: str, hook: Hook, *args: Any) -> None:
        await _run(name, hook, args)


_INLINE = _Inline()


class _Lane:
    """One request's hooks, run in order in the middleware's task group."""

    __slots__ = ("_pending", "_running", "_task_group")

    def __init__(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        self._pending: deque[tuple[str, Hook, tuple[Any, ...]]] = deque()
        self._running = False

    async def fire(self, name: str, hook: Hook, *args: Any) -> None:
        self._pending.append((name, hook, args))
        if self._running:
            return
        self._running = True
        try:
            self._task_group.start_soon(self._drain)
        except RuntimeError:  # the task group has closed (a stream outlived the pipeline)
            await self._drain()

    async def _drain(self) -> None:
        try:
            while self._pending:
                name, hook, args = self._pending.popleft()
                await _run(name, hook, args)
        finally:
            self._running = False


_Runner = _Inline | _Lane


class Callbacks:
    """The callbacks middleware; see the module docstring for when each hook fires."""

    __slots__ = ("_background", "_hooks", "_loop", "_task_group")

    def __init__(
        self,
        *,
        on_request: Hook | None = None,
        on_success: Hook | None = None,
        on_failure: Hook | None = None,
        on_stream_chunk: Hook | None = None,
        on_stream_end: Hook | None = None,
        background: bool = False,
    ) -> None:
        hooks = dict(
            zip(
                _HOOKS,
                (on_request, on_success, on_failure, on_stream_chunk, on_stream_end),
                strict=True,
            )
        )
        for name, hook in hooks.items():
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable, got {hook!r}")
        if not isinstance(background, bool):
            raise TypeError(f"background must be a bool, got {background!r}")
        self._hooks: dict[str, Hook] = {k: v for k, v in hooks.items() if v is not None}
        self._background = background
        self._task_group: TaskGroup | None = None
        self._loop: object | None = None  # the event loop the task group runs on

    def __repr__(self) -> str:
        shown = [
            f"{name}={getattr(hook, '__qualname__', type(hook).__name__)}"
            for name, hook in self._hooks.items()
        ]
        return f"Callbacks({', '.join([*shown, f'background={self._background}'])})"

    # -- lifetime (background hooks) -----------------------------------------

    async def __aenter__(self) -> Callbacks:
        if self._background:
            if self._task_group is not None:
                raise RuntimeError(f"{self!r} is already running in a pipeline")
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
            self._task_group = task_group
            self._loop = running_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            # Wait for the pending hooks, whatever ended the pipeline's block.
            await task_group.__aexit__(None, None, None)

    # -- requests --------------------------------------------------------------

    def _runner(self) -> _Runner:
        if not self._background:
            return _INLINE
        if self._task_group is None:
            raise BackgroundNotRunningError(
                "Callbacks(background=True) runs hooks in a task group the pipeline owns: "
                "make requests inside `async with pipeline:`"
            )
        if running_loop() is not self._loop:
            raise BackgroundNotRunningError(
                "Callbacks(background=True) runs hooks on the event loop that entered "
                "`async with pipeline:` (or `with pipeline:`, its loop thread); this request "
                "runs on another one: make it there, or use a pipeline per event loop"
            )
        return _Lane(self._task_group)

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        runner = self._runner()
        hooks = self._hooks
        start = time.perf_counter()
        if "on_request" in hooks:
            await runner.fire("on_request", hooks["on_request"], request)
        try:
            result = await call_next(request)
        except Exception as exc:
            await self._fail(runner, request, exc)
            raise
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._fail(runner, request, _cancelled(exc))
            raise
        if isinstance(result, Stream):
            if hooks.keys() - {"on_request"}:
                watch = _StreamWatch(self, runner, request, start, result)
                return observe(
                    result,
                    on_chunk=watch.on_chunk,
                    on_end=watch.on_end,
                    on_error=watch.on_error,
                )
            return result
        if "on_success" in hooks:
            await runner.fire("on_success", hooks["on_success"], request, result)
        return result

    async def _fail(self, runner: _Runner, request: Request, exc: BaseException) -> None:
        if "on_failure" in self._hooks:
            await runner.fire("on_failure", self._hooks["on_failure"], request, exc)


def _cancelled(cause: BaseException | None) -> RequestCancelled:
    if cause is None:
        return RequestCancelled("the stream was closed before its end")
    marker = RequestCancelled(f"the request was cancelled ({type(cause).__name__})")
    marker.__cause__ = cause
    return marker


class _StreamWatch:
    """One returned stream: assembles it and fires the end hooks exactly once."""

    __slots__ = ("_folded", "_layer", "_request", "_runner", "_start", "_stream")

    def __init__(
        self,
        layer: Callbacks,
        runner: _Runner,
        request: Request,
        start: float,
        stream: Stream[Any],
    ) -> None:
        self._layer = layer
        self._runner = runner
        self._request = request
        self._start = start
        self._stream = stream
        hooks = layer._hooks
        wanted = "on_success" in hooks or "on_stream_end" in hooks
        self._folded = StreamAccumulator() if wanted else None

    def _response(self) -> ChatResponse:
        response = self._folded.response() if self._folded is not None else ChatResponse()
        stream = self._stream
        response.provider = response.provider or stream.provider
        response.model = response.model or stream.model
        response.cache_hit = stream.cache_hit
        response.attempts = stream.attempts
        response.request_id = stream.request_id
        response.cost = stream.cost
        response.latency = time.perf_counter() - self._start
        return response

    async def on_chunk(self, chunk: ChatChunk) -> None:
        if self._folded is not None:
            self._folded.add(chunk)
        hook = self._layer._hooks.get("on_stream_chunk")
        if hook is not None:
            await self._runner.fire("on_stream_chunk", hook, self._request, chunk)

    async def on_end(self, completed: bool) -> None:
        if completed:
            await self._end(completed, "on_success", None)
        else:
            with anyio.CancelScope(shield=True):
                await self._end(completed, "on_failure", _cancelled(None))

    async def on_error(self, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            await self._end(False, "on_failure", exc)
        else:
            with anyio.CancelScope(shield=True):
                await self._end(False, "on_failure", _cancelled(exc))

    async def _end(self, completed: bool, final: str, exc: BaseException | None) -> None:
        """``on_stream_end``, then ``final`` with the assembled response or ``exc``."""
        hooks = self._layer._hooks
        request = self._request
        response = self._response() if self._folded is not None else None
        if "on_stream_end" in hooks:
            await self._runner.fire(
                "on_stream_end", hooks["on_stream_end"], request, response, completed
            )
        if final in hooks:
            await self._runner.fire(final, hooks[final], request, response if exc is None else exc)
