"""The README's "Write a native provider" example is complete and works as written.

Its code block is run as a module, then driven through a Pipeline against an
in-process server speaking the made-up API it describes.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline import Pipeline, errors
from pipeline.adapter import Adapter
from providers import ProviderRegistry

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"
HI = [{"role": "user", "content": "hi"}]


def example_module() -> types.ModuleType:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Write a native provider") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("acme_example")
    sys.modules["acme_example"] = module  # attrs and dataclass-like tools look modules up
    try:
        exec(compile(code, "README.md:acme", "exec"), module.__dict__)
    finally:
        del sys.modules["acme_example"]
    return module


ACME: Adapter = example_module().ACME


def server(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        if body["model"] == "missing":
            return httpx.Response(404, json={"error": "no such model"})
        if body["stream"]:
            lines = [{"text": "Hel"}, {"text": "lo"}, {"done": True, "stop": "end"}]
            if body["model"] == "cut":
                lines = lines[:2]
            raw = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
            return httpx.Response(200, content=raw)
        reply = {"id": "a1", "text": "Hello", "stop": "limit", "tokens": {"in": 3, "out": 2}}
        return httpx.Response(200, json=reply)

    return httpx.MockTransport(handler)


async def call(model: str, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    monkeypatch.setenv("ACME_API_KEY", "acme-key-0123456789")
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=server(seen)) as client:
        pipe = Pipeline(registry=ProviderRegistry([ACME]), http_client=client)
        result = await pipe.acompletion(f"acme/{model}", HI, **kwargs)
        if kwargs.get("stream"):
            async with result:
                result = [chunk async for chunk in result]
    return result, seen


async def test_the_example_answers_a_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    response, [sent] = await call("small", monkeypatch, max_tokens=5, user="u", temperature=0.2)
    assert str(sent.url) == "https://api.acme.example/v1/generate"
    assert sent.headers["authorization"] == "Bearer acme-key-0123456789"
    assert json.loads(sent.content) == {
        "model": "small",
        "prompt": [{"speaker": "user", "text": "hi"}],
        "stream": False,
        "max_new_tokens": 5,
        "temperature": 0.2,
    }
    assert response.choices[0].message.content == "Hello"
    assert response.choices[0].finish_reason == "length"
    assert response.usage.total_tokens == 5


async def test_the_example_streams_and_knows_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks, _ = await call("small", monkeypatch, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello"
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(errors.ProviderResponseError, match="done line"):
        await call("cut", monkeypatch, stream=True)


async def test_the_example_refuses_and_maps_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.InvalidRequestError, match="seed"):
        await call("small", monkeypatch, seed=1)
    from pipeline import UpstreamStatusError

    with pytest.raises(UpstreamStatusError) as caught:
        await call("missing", monkeypatch)
    error = caught.value.unified()
    assert type(error) is errors.NotFoundError
    assert error.message == "no such model"
