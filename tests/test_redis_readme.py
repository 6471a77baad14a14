"""The README's shared-state examples run as written (against the test session's Redis)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.applications import Starlette

from middlewares import Cache, Router
from middlewares.cache import RedisCache
from middlewares.state import RedisState

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"
WRITTEN = "redis://127.0.0.1:6379/0"


def examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Shared state on Redis") : text.index("## Testing your code")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


async def test_the_library_example_shares_cache_and_state(redis_url: str) -> None:
    namespace: dict[str, object] = {}
    exec(examples()[0].replace(WRITTEN, redis_url), namespace)
    pipe = namespace["pipe"]
    layers = pipe.middlewares  # type: ignore[attr-defined]
    cache = next(layer for layer in layers if isinstance(layer, Cache))
    router = next(layer for layer in layers if isinstance(layer, Router))
    assert isinstance(cache.backend, RedisCache) and isinstance(router.state, RedisState)
    assert cache.backend.redis is router.state.redis  # one pool for both
    shared = (await router.asnapshot()).deployments["openai/gpt-4o-mini"]
    assert (shared.rpm, shared.in_flight, shared.breaker) == (500, 0, "closed")
    await router.state.redis.aclose()


def test_the_gateway_factory_builds_an_app(redis_url: str) -> None:
    namespace: dict[str, object] = {}
    exec(next(e for e in examples() if "create_app" in e).replace(WRITTEN, redis_url), namespace)
    app = namespace["app"]()  # type: ignore[operator]
    assert isinstance(app, Starlette)
