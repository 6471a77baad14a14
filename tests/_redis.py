"""A real redis-server for the tests: started once per session on a free loopback port.

``redis-server`` (or ``valkey-server``; or the program named by
``$DISPATCHLINE_REDIS_SERVER``) runs with ``--save '' --appendonly no``: nothing
is written to disk. Tests that need it take the ``redis_server`` fixture (or
``redis_url``, which also gives each test a prefix of its own). Without such a
program they are skipped, except in CI (``CI`` set), where they fail: CI must
have one (``./run test`` installs it with apt-get when it runs as root).

A test that stops or pauses Redis starts its own :class:`RedisServer`, so the
session's stays up for the others.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROGRAMS = ("redis-server", "valkey-server")


def redis_program() -> str | None:
    named = os.environ.get("DISPATCHLINE_REDIS_SERVER")
    if named:
        return named
    for program in PROGRAMS:
        found = shutil.which(program)
        if found:
            return found
    return None


def need_redis_program() -> str:
    """The redis-server to run; skips the test (fails it in CI) when there is none."""
    program = redis_program()
    if program is None:
        reason = "no redis-server on PATH (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the Redis tests")
        pytest.skip(reason)
    return program


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1; ``stop()`` and ``start()`` again on the
    same port (a restart), ``pause()`` / ``resume()`` (SIGSTOP: a Redis that hangs)."""

    def __init__(self, program: str, folder: Path) -> None:
        self.program = program
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.program,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
        ]
        for _ in range(3):
            with (self.folder / f"redis-{self.port}.log").open("ab") as log:
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                if _answers(self.port):
                    return
                time.sleep(0.02)
            self.stop()
            self.port = free_port()  # taken meanwhile, most likely: another port
            command[2] = str(self.port)
        raise RuntimeError(f"{self.program} did not start; see its log in {self.folder}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - redis exits on SIGTERM
                process.kill()
                process.wait()

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def started(program: str, folder: Path) -> RedisServer:
    server = RedisServer(program, folder)
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    program = need_redis_program()
    with tempfile.TemporaryDirectory(prefix="dispatchline-redis-") as folder:
        server = started(program, Path(folder))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of the test's own, so tests sharing the server never meet."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop, restart or pause."""
    server = started(need_redis_program(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def stored(url: str, prefix: str) -> dict[bytes, bytes]:
    """Every key under ``prefix`` with its value as bytes, whatever its type (a hash's
    or a sorted set's members and values joined): what a test scans for secrets."""
    import coredis

    async with coredis.Redis.from_url(url) as client:
        out: dict[bytes, bytes] = {}
        for key in await client.keys(f"{prefix}:*"):
            kind = await client.type(key)
            value: Any
            if kind == b"string":
                value = await client.get(key)
            elif kind == b"hash":
                value = b" ".join(k + b"=" + v for k, v in (await client.hgetall(key)).items())
            elif kind == b"zset":
                members = await client.zrange(key, 0, -1, withscores=True)
                value = b" ".join(bytes(m.member) for m in members)  # type: ignore[arg-type]
            else:
                value = await client.dump(key)
            out[key] = value
        return out
