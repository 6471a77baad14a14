"""The sync facade: one event loop in a daemon thread per pipeline, reached through a portal.

A pooled ``httpx.AsyncClient`` belongs to the event loop that opened its
connections, so every sync call of a pipeline runs on that pipeline's one loop
thread, and connections are reused across sync calls.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from pipeline._loops import running_loop
from pipeline.errors import SyncInEventLoopError

if TYPE_CHECKING:  # imported when a sync call first needs it: async users never pay for it
    from anyio.from_thread import BlockingPortal

T = TypeVar("T")


def in_event_loop() -> bool:
    """True inside a running asyncio or trio event loop (in this thread)."""
    return running_loop() is not None


class LoopThread:
    """An anyio event loop running in a daemon thread until :meth:`stop`."""

    def __init__(self, backend: str = "asyncio") -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None

    def portal(self) -> BlockingPortal:
        if in_event_loop():
            raise SyncInEventLoopError(
                "a sync dispatchline call was made inside a running event loop; "
                "await the a-method instead (acompletion, aembedding, ...)"
            )
        with self._lock:
            if self._portal is None:
                ready = threading.Event()
                failure: list[BaseException] = []

                from anyio.from_thread import BlockingPortal

                async def serve() -> None:
                    async with BlockingPortal() as portal:
                        self._portal = portal
                        ready.set()
                        await portal.sleep_until_stopped()

                def run() -> None:
                    try:
                        anyio.run(serve, backend=self._backend)
                    except BaseException as exc:  # pragma: no cover - surfaced below
                        failure.append(exc)
                        ready.set()

                self._thread = threading.Thread(target=run, name="dispatchline-sync", daemon=True)
                self._thread.start()
                ready.wait()
                if failure:
                    raise failure[0]
            assert self._portal is not None
            return self._portal

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self.portal().call(func, *args)

    @property
    def running(self) -> bool:
        return self._portal is not None

    def is_current(self) -> bool:
        """True when called on this loop thread itself."""
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self) -> None:
        with self._lock:
            portal, self._portal = self._portal, None
            thread, self._thread = self._thread, None
        if portal is not None:
            portal.call(portal.stop)
        if thread is not None:
            thread.join()
