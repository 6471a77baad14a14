"""One event loop's Redis client, held open by a task of that loop (for SharedRedis)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

from middlewares._log import logger
from middlewares._tasks import spawn
from pipeline._loops import running_loop

__all__ = ["Pool", "close_pools"]


class Pool:
    """One event loop's client, held open by a task on that loop until ``stop``."""

    __slots__ = ("client", "closed", "loop", "pools", "ready", "stop", "task")

    def __init__(self, client: Any, loop: object, pools: dict[object, Pool]) -> None:
        self.client = client
        self.loop = loop
        self.pools = pools  # where it is filed, until it closes
        self.ready = anyio.Event()
        self.stop = anyio.Event()
        self.closed = anyio.Event()
        self.task: object = None  # asyncio's task handle, kept so it is not collected

    async def own(self) -> None:
        try:
            async with self.client:
                self.ready.set()
                await self.stop.wait()
        except Exception as exc:  # the pool broke: the next operation opens a new one
            logger().debug("redis.pool_closed", error=type(exc).__name__)
        finally:
            self.ready.set()
            self.closed.set()
            if self.pools.get(self.loop) is self:
                del self.pools[self.loop]

    def start(self) -> None:
        # The pool outlives the request that opened it.
        self.task = spawn(self.own, "dispatchline-redis")

    def close_soon(self, *, here: bool = True) -> None:
        """Ask the pool to close, from any thread (``here=False``: never directly,
        as from a garbage collector's finalizer)."""
        loop = self.loop
        try:
            if here and loop is running_loop():
                self.stop.set()
            elif isinstance(loop, asyncio.AbstractEventLoop):
                loop.call_soon_threadsafe(self.stop.set)
            else:
                loop.run_sync_soon(self.stop.set)  # type: ignore[attr-defined]
        except RuntimeError:  # that loop has ended, and its pool with it
            pass


def close_pools(pools: dict[object, Pool]) -> None:
    for pool in list(pools.values()):
        pool.close_soon(here=False)
