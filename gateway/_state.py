"""The gateway's one piece of state: the current generation, swapped whole on reload.

A :class:`Generation` is a pipeline with the keys and settings it was built
with. Every request takes the current generation when it starts and gives it
back when it ends (a stream, when the stream ends), so a reload never changes
what a request in flight runs on. :meth:`Gateway.reload` builds the new
generation completely (a config that fails leaves the old one serving),
starts it, swaps it in, and retires the old one: it is closed once its last
request has ended, or after ``graceful_timeout`` seconds.

Each generation's pipeline is entered (``async with pipeline``) and closed in
a task of the gateway's own task group, which lives as long as the app's
lifespan: middlewares that run background work get a task group that
outlives any one request.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import structlog

from gateway._auth import Keyring, Usage
from gateway.config import Config, ServerConfig, load_config
from pipeline import Pipeline

if TYPE_CHECKING:
    from middlewares.shared import SharedRedis
    from pipeline import Middleware

log = structlog.get_logger("dispatchline.gateway")


class Generation:
    """One pipeline, its keys and settings, and how many requests are using it."""

    def __init__(
        self,
        pipeline: Pipeline,
        keyring: Keyring,
        server: ServerConfig,
        *,
        owned: bool,
        redis: SharedRedis | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.keyring = keyring
        self.server = server
        self.owned = owned  # built from config: the gateway enters and closes it
        self.redis = redis  # [redis]: its connections, maybe shared with the next generation
        self.in_flight = 0
        self.retired = False
        self._drained = anyio.Event()
        self.closed = anyio.Event()  # set once its pipeline is closed

    def acquire(self) -> Generation:
        self.in_flight += 1
        return self

    def release(self) -> None:
        self.in_flight -= 1
        if self.retired and self.in_flight == 0:
            self._drained.set()

    def retire(self) -> None:
        self.retired = True
        if self.in_flight == 0:
            self._drained.set()

    def close_now(self) -> None:
        """Stop waiting for the requests still in flight (they fail as the pipeline closes)."""
        if self.in_flight:
            log.warning("gateway.closed_with_requests", in_flight=self.in_flight)
        self.retired = True
        self._drained.set()

    async def drained(self) -> None:
        await self._drained.wait()

    def find(self, kind: Callable[[Middleware], bool]) -> Any:
        """The first middleware of the pipeline that ``kind`` accepts, or None."""
        return next((m for m in self.pipeline.middlewares if kind(m)), None)


class NotReady(RuntimeError):
    """The app was called outside its lifespan (no generation has started)."""


class Gateway:
    """What the app serves: the current generation, and how to reload it."""

    def __init__(
        self,
        *,
        pipeline: Pipeline | None = None,
        config: Config | None = None,
        master_key: str | None = None,
        watch_sighup: bool = False,
    ) -> None:
        if (pipeline is None) == (config is None):
            raise TypeError("give the gateway either a pipeline or a config")
        self._pipeline = pipeline
        self._config = config
        self._master_key = master_key
        self._watch_sighup = watch_sighup
        self._usage: dict[str, Usage] = {}  # per-key counters, kept across reloads
        self._kept: dict[Hashable, Any] = {}  # Stats and budgets, kept across reloads
        # The gateway's own counts, for /api/v1/stats (kept across reloads).
        self.requests = 0
        self.failures = 0
        self.last_request: float | None = None
        self._current: Generation | None = None
        self._alive: set[Generation] = set()
        self._group: anyio.abc.TaskGroup | None = None
        self._helpers: anyio.abc.TaskGroup | None = None
        self._lock: anyio.Lock | None = None

    @property
    def config_path(self) -> Path | None:
        return self._config.source if self._config is not None else None

    @property
    def current(self) -> Generation:
        if self._current is None:
            raise NotReady("the gateway has not started (run the app's lifespan)")
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def spawn(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``function(*args)`` in the gateway's helper task group (as long as the app)."""
        if self._helpers is None:
            raise NotReady("the gateway has not started (run the app's lifespan)")
        self._helpers.start_soon(function, *args)

    def _generation(self, config: Config | None) -> Generation:
        if config is None:
            assert self._pipeline is not None
            server = ServerConfig()
            keyring = Keyring(self._master_key, usage=self._usage)
            return Generation(self._pipeline, keyring, server, owned=False)
        server = config.server
        master = server.master_key.reveal() if server.master_key is not None else None
        keyring = Keyring(master or self._master_key, server.keys, usage=self._usage)
        pipeline = config.build_pipeline(self._kept)
        redis = config.redis.redis if config.redis is not None else None
        return Generation(pipeline, keyring, server, owned=True, redis=redis)

    async def _own(
        self, generation: Generation, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Enter the generation's pipeline; close it once retired and drained (bounded)."""
        self._alive.add(generation)
        try:
            if not generation.owned:
                task_status.started()
                await generation.drained()
                return
            async with generation.pipeline:
                task_status.started()
                await generation.drained()
        finally:
            self._alive.discard(generation)
            if generation.owned:
                await self._let_go(generation)
            generation.closed.set()

    async def _let_go(self, generation: Generation) -> None:
        """After a generation's pipeline has closed: its layers send what they have
        not yet sent to shared state (Stats' last counts), and its Redis
        connections close unless a generation still running uses them."""
        with anyio.CancelScope(shield=True):
            for layer in generation.pipeline.middlewares:
                flush = getattr(layer, "aflush", None)
                if flush is not None:
                    await flush()  # bounded: every Redis operation has a timeout
            redis = generation.redis
            if redis is not None and all(g.redis is not redis for g in self._alive):
                await redis.aclose()

    async def _start(self, generation: Generation) -> None:
        assert self._group is not None
        await self._group.start(self._own, generation)
        old, self._current = self._current, generation
        if old is not None:
            old.retire()
            self._group.start_soon(self._force_close, old)

    async def _force_close(self, generation: Generation) -> None:
        with anyio.move_on_after(generation.server.graceful_timeout):
            await generation.drained()
        generation.close_now()

    async def reload(self) -> Generation:
        """Load the config file again and swap the new pipeline in.

        Raises :class:`gateway.ConfigError` (the old generation keeps serving)
        or RuntimeError when the gateway was built from a pipeline, not a file.
        """
        if self._config is None or self._config.source is None:
            raise RuntimeError("this gateway was not built from a config file: nothing to reload")
        assert self._lock is not None
        async with self._lock:
            config = load_config(self._config.source)
            await self._start(self._generation(config))
            self._config = config
        log.info("gateway.reloaded", config=str(config.source))
        return self.current

    async def _sighup(self) -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                try:
                    await self.reload()
                except Exception as exc:  # the old pipeline keeps serving
                    log.error("gateway.reload_failed", error=str(exc))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """The app's lifespan: start the first generation; at the end, drain and close."""
        self._lock = anyio.Lock()
        async with anyio.create_task_group() as group, anyio.create_task_group() as helpers:
            # `group` owns the generations; `helpers` the SIGHUP watcher and the
            # per-request disconnect watchers, cancelled once requests have drained.
            self._group, self._helpers = group, helpers
            await self._start(self._generation(self._config))
            if self._watch_sighup:
                helpers.start_soon(self._sighup)
            try:
                yield self
            finally:
                last, self._current = self._current, None
                if last is not None:
                    last.retire()
                    with anyio.move_on_after(last.server.graceful_timeout, shield=True):
                        await last.drained()
                helpers.cancel_scope.cancel()
                for generation in list(self._alive):
                    generation.close_now()  # each closes its pipeline in its own task
                self._group = self._helpers = None
