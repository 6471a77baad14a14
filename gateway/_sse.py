"""Streaming a pipeline's stream to an HTTP client as server-sent events.

The stream's first chunk has already arrived when the pipeline returns it, so
an error before it is answered with a status and a JSON body, never here.
:class:`EventStream` then writes one event per chunk and ``data: [DONE]`` at
the end. An error after the first chunk becomes one ``data: {"error": ...}``
event and the body ends without ``[DONE]`` (the openai SDK raises
``APIError`` from it). After ``ping_interval`` seconds without a write, a
comment line (``: ping``) keeps proxies from closing the idle connection.

The client's disconnect is watched on ``receive`` for the whole response:
when it goes, the task reading the upstream stream is cancelled and the
upstream stream closed at once, so the provider stops generating (Starlette's
StreamingResponse only notices a gone client at its next write, under ASGI
2.4 servers not even then).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pipeline import Stream

Encode = Callable[[Any], bytes | None]


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone (the request body is read by then)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class Disconnect:
    """One watcher per request: cancels whatever scope is registered when the client goes.

    The watcher is a task of the gateway's own task group, started once the
    body has been read, and never cancelled: an ASGI server answers a pending
    ``receive`` with ``http.disconnect`` once the response has been sent, so
    it ends by itself. (A task group per call, cancelled at the end, costs
    about 0.1 ms per request; this costs one task start.)
    """

    __slots__ = ("_scope", "_spawn", "_started", "gone")

    def __init__(self, spawn: Callable[..., None]) -> None:
        self._spawn = spawn
        self._scope: anyio.CancelScope | None = None
        self._started = False
        self.gone = False

    def watch(self, receive: Receive, scope: anyio.CancelScope | None) -> None:
        """Cancel ``scope`` (replacing the last one registered) if the client leaves."""
        self._scope = scope
        if self.gone and scope is not None:
            scope.cancel()
        elif not self._started:
            self._started = True
            self._spawn(self._run, receive)

    async def _run(self, receive: Receive) -> None:
        await wait_for_disconnect(receive)
        self.gone = True
        if self._scope is not None:
            self._scope.cancel()


class EventStream(Response):
    """An ASGI response writing ``stream`` as SSE; ``on_end(failed)`` runs once, at the end."""

    media_type = "text/event-stream"

    def __init__(
        self,
        stream: Stream[Any],
        *,
        encode: Encode,
        error_event: Callable[[BaseException], bytes],
        done: bytes | None,
        ping_interval: float,
        on_end: Callable[[bool], None],
        disconnect: Disconnect,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        )
        self._stream = stream
        self._encode = encode
        self._error_event = error_event
        self._done = done
        self._ping_interval = ping_interval
        self._on_end = on_end
        self._disconnect = disconnect
        self._last_write = 0.0
        self._lock = anyio.Lock()

    async def _write(self, send: Send, data: bytes) -> None:
        async with self._lock:
            await send({"type": "http.response.body", "body": data, "more_body": True})
            self._last_write = anyio.current_time()

    async def _pump(self, send: Send) -> bool:
        """Write every chunk; True when the stream failed (its error event was written)."""
        try:
            async for chunk in self._stream:
                data = self._encode(chunk)
                if data:
                    await self._write(send, data)
        except Exception as exc:
            await self._write(send, self._error_event(exc))
            return True
        finally:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
        if self._done is not None:
            await self._write(send, self._done)
        return False

    async def _ping(self, send: Send) -> None:
        while True:
            await anyio.sleep(self._last_write + self._ping_interval - anyio.current_time())
            if anyio.current_time() - self._last_write >= self._ping_interval:
                await self._write(send, b": ping\n\n")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        failed = False  # a client that left is not a failure of the stream
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            self._last_write = anyio.current_time()
            async with anyio.create_task_group() as group:
                self._disconnect.watch(receive, group.cancel_scope)
                group.start_soon(self._ping, send)
                failed = await self._pump(send)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()
        finally:
            self._disconnect.watch(receive, None)
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()  # also when cancelled before the pump began
            self._on_end(failed)
