"""Background work on the running event loop, owned by no request."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

from pipeline._loops import running_loop

__all__ = ["spawn"]

_TASKS: set[asyncio.Task[None]] = set()  # spawned asyncio tasks, until they end


def spawn(function: Callable[[], Awaitable[None]], name: str) -> object:
    """Run ``function()`` as a task of the running event loop's own, one that
    outlives the caller (a system task under trio), with a context of its own.

    For work that no request should wait for. ``function`` must not raise
    (under trio, a system task that raises ends the run). Returns asyncio's
    task (held here until it ends: asyncio holds its tasks weakly), or None
    under trio.
    """
    context = contextvars.Context()
    loop = running_loop()
    if isinstance(loop, asyncio.AbstractEventLoop):
        task = loop.create_task(_awaited(function), name=name, context=context)
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
        return task
    import trio

    trio.lowlevel.spawn_system_task(function, name=name, context=context)
    return None


async def _awaited(function: Callable[[], Awaitable[None]]) -> None:
    await function()
