"""Which event loop, if any, runs the current thread: asyncio's or trio's."""

from __future__ import annotations

import sys


def running_loop() -> object | None:
    """The running event loop (asyncio's loop, or trio's token), or None."""
    asyncio = sys.modules.get("asyncio")  # not imported: no asyncio loop runs
    if asyncio is not None:
        try:
            loop: object = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return loop
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            token: object = trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return token
    return None
