"""The requests adapters build are what httpx builds from the same arguments, byte for byte.

The terminal builds each ``httpx.Request`` through :mod:`pipeline._adapter_http`
(URLs parsed once, the body encoded by one shared encoder, headers assembled in
one pass). A server, a proxy, a signature over the headers or a test's
MockTransport handler sees exactly what ``httpx.Request(..., json=body)`` gives.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline._adapter_http import json_request, parsed_url, request_for

URLS = [
    "https://api.openai.com/v1/chat/completions",
    "http://127.0.0.1:8080/v1/chat/completions",
    "http://[::1]:9000/v1/embeddings",
    "https://example.com:443/openai/deployments/d/chat/completions?api-version=2024-10-21",
    "https://xn--bcher-kva.example/v1/x",
    "https://bücher.example/v1/x",
]
HEADERS: list[dict[str, str]] = [
    {},
    {"authorization": "Bearer sk-abc", "x-tenant": "t"},
    {"Content-Type": "application/json; charset=utf-8"},
    {"host": "proxy.internal", "X-API-Key": "k"},
    {"content-length": "999"},
]


def _same(ours: httpx.Request, theirs: httpx.Request) -> None:
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert str(ours.url) == str(theirs.url)
    assert ours.headers.raw == theirs.headers.raw
    assert ours.content == theirs.content
    assert ours.extensions == theirs.extensions


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("headers", HEADERS)
def test_a_json_request_is_httpxs_own(url: str, headers: dict[str, str]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "héllo ☃"}], "n": 1}
    extensions = {"timeout": {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 2.0}}
    theirs = httpx.Request("POST", url, headers=headers, json=body, extensions=extensions)
    _same(json_request(url, headers, body, extensions), theirs)
    _same(request_for(url, headers, {"json": body}, extensions), theirs)


scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(body=json_values)
def test_any_json_body_is_encoded_as_httpx_encodes_it(body: Any) -> None:
    url = URLS[0]
    _same(json_request(url, {}, body), httpx.Request("POST", url, json=body))


def test_a_body_httpx_refuses_is_refused_alike() -> None:
    for body in ({"x": float("nan")}, [float("inf")], {"x": object()}):
        with pytest.raises((ValueError, TypeError)) as theirs:
            httpx.Request("POST", URLS[0], json=body)
        with pytest.raises(theirs.type):
            json_request(URLS[0], {}, body)


def test_a_multipart_request_goes_through_httpx_as_given() -> None:
    url = "https://api.openai.com/v1/audio/transcriptions"
    content = {"files": {"file": ("a.wav", b"RIFF....")}, "data": {"model": "whisper-1"}}
    ours = request_for(url, {"authorization": "Bearer k"}, content)
    assert ours.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert ours.headers["host"] == "api.openai.com"
    assert b'name="model"\r\n\r\nwhisper-1' in ours.read()


def test_a_url_is_parsed_once_and_an_invalid_one_fails_as_in_httpx() -> None:
    assert parsed_url(URLS[1])[0] is parsed_url(URLS[1])[0]
    with pytest.raises(httpx.InvalidURL):
        httpx.Request("POST", "http://example.com:abc/")
    with pytest.raises(httpx.InvalidURL):
        json_request("http://example.com:abc/", {}, {})
