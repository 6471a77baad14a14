"""Dispatch is a table or a per-endpoint method, never a comparison over names.

The library's rule (DESIGN.md): no ``if provider == ...`` anywhere, and the
same for endpoints and the seed's vendors. The source of every package is
read here, so a comparison that comes back fails the suite; and the
per-endpoint body hook that replaced the last one (``<endpoint>_content``)
is shown to be the one called, for the endpoint it names only.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import httpx
import pytest

from pipeline import Pipeline, Request
from providers import ProviderRegistry
from providers.openai_compatible import ALL_ENDPOINTS, OpenAICompatible
from tests._source import parse_source

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "middlewares", "providers", "gateway")
NAMES = re.compile(r"[a-z_]*(provider|vendor|endpoint)[a-z_]*")
SOURCES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def name_comparisons(source: str) -> list[int]:
    """Lines where an ``if``/``elif`` (or ``x if ... else y``) compares a provider,
    vendor or endpoint name with ``==`` to a string written in the code."""
    found = []
    for node in ast.walk(parse_source(source)):
        if not isinstance(node, ast.If | ast.IfExp):
            continue
        for compare in ast.walk(node.test):
            if not isinstance(compare, ast.Compare):
                continue
            sides = [compare.left, *compare.comparators]
            named = any(NAMES.fullmatch(_name(side)) for side in sides)
            literal = any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in sides)
            if named and literal and any(isinstance(op, ast.Eq) for op in compare.ops):
                found.append(compare.lineno)
    return found


def test_the_check_sees_a_comparison_chain() -> None:
    chain = (
        "if request.endpoint == 'chat':\n    a()\n"
        "elif 'speech' == endpoint:\n    b()\n"
        "x = 1 if provider_name == 'azure' else 2\n"
        "if request.endpoint in TABLE:\n    c()\n"
    )
    assert name_comparisons(chain) == [1, 3, 5]


def test_the_checked_packages_are_all_there() -> None:
    assert {path.parent.name for path in SOURCES} >= {*PACKAGES, "cache", "usage", "router"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_comparison_over_provider_vendor_or_endpoint_names(path: Path) -> None:
    assert name_comparisons(path.read_text(encoding="utf-8")) == []


# -- the per-endpoint body hook -----------------------------------------------------------


class FormEmbeddings(OpenAICompatible):
    """A server that takes its embedding input as a form, as a subclass would say."""

    def embedding_content(self, request: Request, params: dict[str, object]) -> dict[str, object]:
        return {"data": {"model": request.model, "input": str(request.input)}}


@pytest.mark.anyio
async def test_an_endpoint_content_override_is_called_for_that_endpoint_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/embeddings"):
            vector = {"index": 0, "embedding": [0.5]}
            return httpx.Response(200, json={"data": [vector], "model": "m"})
        choice = {"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}
        return httpx.Response(200, json={"choices": [choice]})

    adapter = FormEmbeddings(
        name="form",
        base_url="http://form.invalid/v1",
        endpoints=ALL_ENDPOINTS,
        transport=httpx.MockTransport(handler),
    )
    async with Pipeline(registry=ProviderRegistry([adapter])) as pipe:
        await pipe.aembedding("form/m", "hello")
        await pipe.acompletion("form/m", [{"role": "user", "content": "hi"}])
    form, chat = seen
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form.content == b"model=m&input=hello"
    assert chat.headers["content-type"] == "application/json"
    assert json.loads(chat.content)["messages"] == [{"role": "user", "content": "hi"}]
