"""The one ASGI middleware: request ids, authentication, and in-flight accounting.

A plain ASGI callable (never Starlette's BaseHTTPMiddleware, which re-streams
every body through a task and a channel). Per request it:

- picks the request id (the caller's ``x-request-id`` when it is sane, else a
  new one) and adds ``x-request-id`` to the response, whatever the route; it
  is bound as ``x_request_id`` with ``structlog.contextvars`` while the
  request runs, so every log line of it (the Logging layer's ``llm.request``
  included) carries it where ``merge_contextvars`` is configured, as
  ``dispatchline serve`` does;
- outside the public routes (probes, metrics), authenticates the caller
  against the current generation's keys, answering every failure with the
  same 401 body;
- refuses a body over ``[server] max_body_bytes`` with 413: at once when its
  ``content-length`` says so, else when the bytes read cross the limit (a
  chunked upload), before the route has parsed any of it;
- takes the current generation for the whole request, a stream included, and
  gives it back when the response has been sent, so a reload waits for it.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import attrs
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

from gateway._auth import VirtualKey
from gateway._errors import body
from gateway._sse import Disconnect
from gateway._state import Gateway, Generation, NotReady

PUBLIC = frozenset(
    {"/health/liveliness", "/health/liveness", "/health/readiness", "/metrics", "/api/v1/health"}
)
SCOPE_KEY = "dispatchline.call"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

UNAUTHORIZED = body("Invalid or missing API key.", "invalid_request_error", "invalid_api_key")


def too_large(limit: int) -> dict[str, Any]:
    message = f"The request body is larger than this gateway accepts ({limit} bytes)."
    return body(message, "invalid_request_error", "request_too_large")


class BodyTooLarge(Exception):
    """A body without ``content-length`` grew past the limit while it was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def capped(receive: Receive, limit: int) -> Receive:
    """``receive``, raising :class:`BodyTooLarge` once the body passes ``limit`` bytes."""
    seen = 0

    async def receive_capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return receive_capped


@attrs.define(slots=True)
class Call:
    """What the gateway knows of one request while it runs."""

    request_id: str
    generation: Generation
    key: VirtualKey
    disconnect: Disconnect
    failed: bool = False
    cost: float | None = None

    def admit(self, model: str) -> None:
        """Raise when this caller's key may not send ``model`` now."""
        self.generation.keyring.admit(self.key, model)


_READ = frozenset({b"x-request-id", b"authorization", b"content-length"})


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request headers the guard reads, in one pass (the first of each)."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in _READ and key not in found:
            found[key] = bytes(value).decode("latin-1")
    return found


async def send_json(send: Send, status: int, data: bytes, headers: list[Any]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": data})


class Guard:
    """``Guard(app, gateway=...)``: see the module docstring."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        read = _headers(scope)
        given = read.get(b"x-request-id")
        request_id = given if given and _SANE_ID.match(given) else "req_" + secrets.token_hex(12)
        id_header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        if scope["path"] in PUBLIC:
            await self.app(scope, receive, send_with_id)
            return
        try:
            generation = self.gateway.current
        except NotReady:
            data = _json(body("the gateway is not ready", "server_error", "not_ready"))
            await send_json(send, 503, data, [id_header])
            return
        key = generation.keyring.authenticate(read.get(b"authorization"))
        if key is None:
            headers = [id_header, (b"www-authenticate", b"Bearer")]
            await send_json(send, 401, _json(UNAUTHORIZED), headers)
            return
        limit = generation.server.max_body_bytes
        length = read.get(b"content-length")
        if length is None:
            receive = capped(receive, limit)
        elif not length.isdigit() or int(length) > limit:
            await send_json(send, 413, _json(too_large(limit)), [id_header])
            return
        call = Call(request_id, generation.acquire(), key, Disconnect(self.gateway.spawn))
        scope[SCOPE_KEY] = call
        gateway = self.gateway
        gateway.requests += 1
        gateway.last_request = time.time()
        bound = bind_contextvars(x_request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_contextvars(**bound)
            generation.keyring.charge(key, call.cost)
            generation.release()
            if call.failed or status >= 400:
                gateway.failures += 1


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
