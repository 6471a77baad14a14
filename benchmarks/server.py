"""An OpenAI-compatible mock server on 127.0.0.1, in its own process (aiohttp.web).

``python -m benchmarks.server`` binds a free loopback port, prints it once
serving, and answers ``POST /v1/chat/completions`` with a chat completion or,
for ``"stream": true``, a :data:`~benchmarks.replies.STREAM_CHUNKS`-chunk SSE
stream (:data:`~benchmarks.replies.SHORT_STREAM_CHUNKS` chunks for
:data:`~benchmarks.replies.SHORT_MODEL`). :class:`LoopbackServer` starts it and
stops it around a benchmark.
It runs in a separate process so the server and the client under test do not
share one event loop.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType

from aiohttp import web

from benchmarks.fresh import ROOT
from benchmarks.replies import completion_body, stream_length, streams

MODEL = "bench-model"
COMPLETION = completion_body(MODEL)
EVENTS = streams(MODEL)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    chunks = stream_length(await request.read())
    if chunks is None:
        return web.Response(body=COMPLETION, content_type="application/json")
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for event in EVENTS[chunks]:
        await response.write(event)
    await response.write_eof()
    return response


def app() -> web.Application:
    application = web.Application()
    application.router.add_post("/v1/chat/completions", chat_completions)
    return application


def serve(application: web.Application | None = None, shutdown_timeout: float = 60.0) -> None:
    """Serve ``application`` (this module's by default) until SIGTERM/SIGINT; the
    port goes to stdout once accepting. On shutdown, handlers still running get
    ``shutdown_timeout`` seconds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def ready(_banner: str) -> None:
        print(port, flush=True)

    web.run_app(
        application or app(),
        sock=sock,
        print=ready,
        access_log=None,
        backlog=1024,
        shutdown_timeout=shutdown_timeout,
    )


class LoopbackServer:
    """``with LoopbackServer() as server: server.base_url`` (``http://127.0.0.1:PORT/v1``).

    ``module`` (run with ``python -m``, given ``args``) is any server that prints
    its port once serving; by default this one.
    """

    def __init__(self, module: str = "benchmarks.server", args: Sequence[str] = ()) -> None:
        self._command = [sys.executable, "-m", module, *args]
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LoopbackServer:
        process = subprocess.Popen(
            self._command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the loopback server did not start (said {line!r})")
        self.port = int(line)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    serve()
