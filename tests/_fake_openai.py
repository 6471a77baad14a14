"""A fake OpenAI API on 127.0.0.1, replaying recorded OpenAI exchanges, for gateway tests.

It runs uvicorn in a thread of the test process (the gateway under test runs
in its own process), so tests can read what it saw: every request, and when
each streamed response's connection was closed by its client. What it answers
depends on the model the request names:

- ``error-<status>``: that status with OpenAI's error body (recorded ones for
  400, 401 and 404);
- ``limited-<tag>``: 429 with ``retry-after: 1`` the first time, then a reply;
- ``slow-<ms>``: the recorded chat reply after that many milliseconds;
- ``echo-key``: 401 whose message repeats the key it was sent (a careless upstream);
- ``break`` (streamed): two recorded chunks, then the connection is dropped;
- ``endless`` (streamed): a chunk every 50 ms until its client goes away;
- anything else: the recorded chat reply, stream or embeddings.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import load_recorded

UPSTREAM_KEY = "sk-upstream-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error_body(status: int) -> dict[str, Any]:
    recorded = {
        400: "openai/error_400_unsupported_value.json",
        401: "openai/error_401_invalid_api_key.json",
        404: "openai/error_404_model_not_found.json",
    }
    if status in recorded:
        body: dict[str, Any] = load_recorded(recorded[status])["response"]["body"]
        return body
    kinds = {429: ("rate_limit_exceeded", "requests"), 503: ("overloaded", "server_error")}
    kind = "server_error" if status >= 500 else "invalid_request_error"  # as OpenAI types them
    code, kind = kinds.get(status, (f"status_{status}", kind))
    return {
        "error": {"message": f"upstream says {status}", "type": kind, "param": None, "code": code}
    }


class FakeOpenAI:
    """``with FakeOpenAI() as upstream: upstream.base_url`` (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.closed: dict[str, float] = {}  # stream tag -> when its client went away
        self._limited: set[str] = set()
        chat = load_recorded("openai/chat_basic.json")["response"]
        self._chat = chat["body"]
        self._stream = load_recorded("openai/chat_stream_text_include_usage.json")["response"]
        self._events = [e + "\n\n" for e in self._stream["body"].split("\n\n") if e.strip()]
        self._embeddings = load_recorded("openai/embeddings_float.json")["response"]["body"]
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/embeddings", self._embed, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def seen(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["body"].get("model") == model]

    async def _record(self, request: Request) -> dict[str, Any]:
        body = json.loads(await request.body())
        self.requests.append(
            {
                "path": request.url.path,
                "body": body,
                "authorization": request.headers.get("authorization"),
            }
        )
        return body  # type: ignore[no-any-return]

    async def _chat_completions(self, request: Request) -> Response:
        body = await self._record(request)
        model = str(body.get("model"))
        if model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            headers = {"retry-after": "0"} if status in (429, 503) else {}
            return JSONResponse(_error_body(status), status, headers)
        if model == "echo-key":
            sent = request.headers.get("authorization", "")
            body = {"error": {"message": f"bad key: {sent}", "type": "invalid_request_error"}}
            return JSONResponse(body, 401)
        if model.startswith("limited-") and model not in self._limited:
            self._limited.add(model)
            return JSONResponse(_error_body(429), 429, {"retry-after": "1"})
        if model.startswith("slow-"):
            await anyio.sleep(int(model.removeprefix("slow-")) / 1000)
        if not body.get("stream"):
            return JSONResponse(self._chat, headers={"x-request-id": "req_upstream_1"})
        headers = {"content-type": "text/event-stream"}
        if model in ("break", "endless"):
            return _Watched(self._special(model), request, self.closed, model, headers)
        return StreamingResponse(iter(self._events), headers=headers)

    async def _special(self, model: str) -> AsyncIterator[str]:
        yield self._events[0]
        yield self._events[1]
        if model == "break":
            raise ConnectionResetError("the fake upstream drops the connection mid-stream")
        for _ in range(600):
            await anyio.sleep(0.05)
            yield self._events[2]

    async def _embed(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse(self._embeddings)


class _Watched(StreamingResponse):
    """Notes when the client went away (a disconnect, or the body broken off)."""

    def __init__(
        self,
        content: Any,
        request: Request,
        closed: dict[str, float],
        tag: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, headers=headers)
        self._closed = closed
        self._tag = tag

    async def listen_for_disconnect(self, receive: Any) -> None:
        await super().listen_for_disconnect(receive)
        self._closed[self._tag] = time.monotonic()
