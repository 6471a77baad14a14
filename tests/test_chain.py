"""The chain: order, binding once, re-entry, evolution, repr, freezing."""

from __future__ import annotations

from typing import Any

import attrs
import httpx
import pytest

from pipeline import ChatResponse, Pipeline, Request
from pipeline._chain import Handler
from providers import ProviderRegistry, Script, mock_provider

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


def ok(content: str = "hello") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        },
    )


def registry_with(handler: Any) -> ProviderRegistry:
    return ProviderRegistry([mock_provider("mock", handler), mock_provider("other", handler)])


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def __call__(self, request: Request, call_next: Handler) -> Any:
        self.log.append(f"{self.name}>")
        result = await call_next(request)
        self.log.append(f"<{self.name}")
        return result

    def __repr__(self) -> str:
        return f"Recorder({self.name!r})"


async def test_first_middleware_is_outermost() -> None:
    log: list[str] = []
    pipe = Pipeline(
        [Recorder("a", log), Recorder("b", log), Recorder("c", log)],
        registry=registry_with(Script(ok())),
    )
    await pipe.acompletion("mock/m", HI)
    assert log == ["a>", "b>", "c>", "<c", "<b", "<a"]


async def test_zero_and_one_middleware_paths() -> None:
    script = Script(ok("zero"), ok("one"))
    registry = registry_with(script)
    bare = await Pipeline(registry=registry).acompletion("mock/m", HI)
    log: list[str] = []
    single = await Pipeline([Recorder("only", log)], registry=registry).acompletion("mock/m", HI)
    assert bare.choices[0].message.content == "zero"
    assert single.choices[0].message.content == "one"
    assert log == ["only>", "<only"]


async def test_plain_function_middleware() -> None:
    seen: list[str] = []

    async def tag(request: Request, call_next: Handler) -> Any:
        seen.append(request.model)
        return await call_next(request)

    pipe = Pipeline([tag], registry=registry_with(Script(ok())))
    await pipe.acompletion("mock/model-x", HI)
    assert seen == ["model-x"]
    assert "tag" in repr(pipe)


async def test_chain_is_bound_once_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import _chain

    binds = 0
    real_layer = _chain._layer

    def counting_layer(middleware: Any, call_next: Handler) -> Handler:
        nonlocal binds
        binds += 1
        return real_layer(middleware, call_next)

    monkeypatch.setattr(_chain, "_layer", counting_layer)
    log: list[str] = []
    layers = [Recorder("a", log), Recorder("b", log)]
    pipe = Pipeline(layers, registry=registry_with(Script(ok(), ok(), ok())))
    assert binds == 2
    for _ in range(3):
        await pipe.acompletion("mock/m", HI)
    assert binds == 2  # requests reuse the bound chain
    assert log.count("a>") == 3
    with pytest.raises(AttributeError, match="frozen"):
        pipe._handler = pipe._handler
    assert pipe.middlewares == tuple(layers)


async def test_call_next_may_be_called_again() -> None:
    async def twice(request: Request, call_next: Handler) -> Any:
        await call_next(request)
        return await call_next(request)

    script = Script(ok("first"), ok("second"))
    resp = await Pipeline([twice], registry=registry_with(script)).acompletion("mock/m", HI)
    assert resp.choices[0].message.content == "second"
    assert len(script.requests) == 2


async def test_middleware_may_evolve_the_request() -> None:
    async def reroute(request: Request, call_next: Handler) -> Any:
        return await call_next(attrs.evolve(request, provider="other", model="swapped"))

    script = Script(ok())
    resp = await Pipeline([reroute], registry=registry_with(script)).acompletion("mock/m", HI)
    assert isinstance(resp, ChatResponse)
    assert resp.provider == "other"
    sent = script.requests[0]
    assert b'"model":"swapped"' in sent.content.replace(b" ", b"")


async def test_repr_lists_layers_in_order() -> None:
    log: list[str] = []
    pipe = Pipeline([Recorder("a", log), Recorder("b", log)], registry=registry_with(Script()))
    assert repr(pipe) == "Pipeline(Recorder('a') -> Recorder('b') -> Dispatcher(2 providers))"


async def test_non_callable_middleware_is_rejected() -> None:
    with pytest.raises(TypeError, match="not callable"):
        Pipeline([42], registry=registry_with(Script()))  # type: ignore[list-item]
