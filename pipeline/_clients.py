"""The HTTP clients a pipeline makes for itself: one per event loop that uses it.

A pooled ``httpx.AsyncClient`` belongs to the event loop that opened its
connections. One pipeline may serve several loops: the sync facade's loop
thread, the application's own loop, a second ``asyncio.run``, threads that
each run a loop. Each gets its own client, made on first use under a lock.
Closing closes every client on its own loop while that loop still runs. A
loop that ends first closes its client as it ends: each client is watched
by an async generator started on its loop, and event loops close the async
generators still open when they finish (``asyncio.run``, ``anyio.run`` and
``trio.run`` all do), so a script that runs one pipeline through several
``asyncio.run`` calls leaves no connection open behind it.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import AsyncGenerator
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import httpx

from pipeline._loops import running_loop
from pipeline.errors import PipelineClosedError

if TYPE_CHECKING:
    from anyio.lowlevel import EventLoopToken

__all__ = ["DEFAULT_TIMEOUT", "LoopClients", "default_client"]

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def _on_asyncio() -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(running_loop(), asyncio.AbstractEventLoop)


class _Direct(Protocol):
    """A transport of ours that requests may be handed to directly."""

    async def send(self, request: httpx.Request, *, read: bool) -> httpx.Response: ...


# The clients default_client() made over a transport of ours, and that transport:
# a request for such a client may be handed to the transport directly.
_DIRECT: weakref.WeakKeyDictionary[httpx.AsyncClient, _Direct] = weakref.WeakKeyDictionary()


def default_client() -> httpx.AsyncClient:
    """The client a pipeline makes when none is injected, on first use.

    On asyncio with ``aiohttp`` installed (the ``[aiohttp]`` extra), it sends
    through aiohttp's connection pool (:mod:`pipeline._aiohttp_transport`):
    several times the throughput of httpx's own under concurrency (see
    benchmarks/RESULTS.md). Elsewhere, and always on trio, httpx's default
    transport. Inject ``http_client=`` to choose.
    """
    if _on_asyncio():
        try:
            import aiohttp  # noqa: F401  (the extra is installed)
        except ImportError:
            pass
        else:
            from pipeline._aiohttp_transport import AiohttpTransport

            transport = AiohttpTransport(timeout=DEFAULT_TIMEOUT)
            client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, transport=transport)
            _DIRECT[client] = transport
            return client
    return httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)


def _nothing() -> None:
    pass


def _running(loop: Any) -> bool:
    """Whether ``loop`` (an asyncio loop or a trio token) still runs."""
    is_running = getattr(loop, "is_running", None)
    if is_running is not None:  # asyncio
        return bool(is_running()) and not loop.is_closed()
    try:  # trio: a token refuses work once its run has finished
        loop.run_sync_soon(_nothing)
    except Exception:
        return False
    return True


class _Own:
    """The client made for one loop, its transport when requests may go to it
    directly, and the async generator that closes it (see the module docstring)."""

    __slots__ = ("client", "direct", "token", "watch")

    def __init__(self, token: EventLoopToken, client: httpx.AsyncClient) -> None:
        self.token = token
        self.client = client
        self.direct = _DIRECT.get(client)
        self.watch = _closes(client)
        # Run it to its yield now, on this loop, so that the loop counts it among
        # its async generators, to close when it ends. It awaits nothing before.
        with suppress(StopIteration):
            self.watch.__anext__().send(None)

    async def aclose(self) -> None:
        await self.watch.aclose()


async def _closes(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Waits at its yield; closes ``client`` once closed, by us or by its loop's end."""
    try:
        yield
    finally:
        await client.aclose()


class LoopClients:
    """``get()`` gives the running loop's client, made on first use; ``send()`` sends through it."""

    __slots__ = ("_by_loop", "_closed", "_last", "_lock")

    def __init__(self) -> None:
        self._by_loop: dict[Any, _Own] = {}
        self._last: tuple[Any, _Own] | None = None  # lock-free fast path
        self._lock = threading.Lock()
        self._closed = False

    def __len__(self) -> int:
        return len(self._by_loop)

    def get(self) -> httpx.AsyncClient:
        return self._own().client

    async def send(self, request: httpx.Request, *, read: bool) -> httpx.Response:
        """Send ``request`` on this loop's client. ``read=False``: the body is left
        to read (a stream); ``read=True``: it may come back read already (the
        pipeline's own transport reads a whole answer at once)."""
        own = self._own()
        direct = own.direct
        if direct is None:
            return await own.client.send(request, stream=True)
        return await direct.send(request, read=read)

    def _own(self) -> _Own:
        loop = running_loop()
        last = self._last
        if last is not None and last[0] is loop and not self._closed:
            return last[1]
        with self._lock:
            if self._closed:
                raise PipelineClosedError("this pipeline is closed: build a new one")
            own = self._by_loop.get(loop)
            if own is None:
                from anyio.lowlevel import current_token

                for ended in [k for k in self._by_loop if not _running(k)]:
                    del self._by_loop[ended]  # its loop is gone, and closed its client
                own = self._by_loop[loop] = _Own(current_token(), default_client())
            self._last = (loop, own)
        return own

    def _take_all(self) -> list[tuple[Any, _Own]]:
        with self._lock:
            self._closed = True
            self._last = None
            taken = list(self._by_loop.items())
            self._by_loop.clear()
        return taken

    async def aclose(self) -> None:
        """Close every client: this loop's here, each other one on its own loop
        (one whose loop has ended was closed as it ended)."""
        here = running_loop()
        for loop, own in self._take_all():
            if loop is here:
                await own.aclose()
            elif _running(loop):
                from anyio.to_thread import run_sync

                await run_sync(partial(_close_on, own))

    def close(self) -> None:
        """:meth:`aclose`, from a thread that runs no event loop."""
        for loop, own in self._take_all():
            if _running(loop):
                _close_on(own)


def _close_on(own: _Own) -> None:
    """Close ``own``'s client on its loop, from another thread; waits."""
    from anyio.from_thread import run

    with suppress(anyio.RunFinishedError):  # that loop ended meanwhile (and closed it)
        run(own.aclose, token=own.token)
