"""Building the ``httpx.Request`` an adapter sends, with as little work per request as it needs.

``httpx.Request("POST", "https://...", json=body)`` parses the URL string,
encodes the body, then adds the ``Host`` and content headers one lookup at a
time: about 25 µs, more than all of a middleware stack's own work. What varies
per request is the body and the credentials; the rest is the same for every
request to one URL. So:

- a URL string is parsed once (:func:`parsed_url` keeps the last few hundred
  distinct ones, a per-call ``api_base`` included) and its ``Host`` value with it;
- a JSON body is encoded once, by one shared encoder, to exactly the bytes
  httpx would send (compact separators, UTF-8, no NaN);
- the headers are assembled in one list, in httpx's order (``Host`` first,
  then the adapter's, then ``Content-Length`` and ``Content-Type``), each
  automatic one only when the caller's headers do not set it already.

The result is an ordinary ``httpx.Request`` with its body read: equal, header
for header and byte for byte, to the one httpx builds from the same arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx

__all__ = ["json_request", "parsed_url", "request_for"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@lru_cache(maxsize=512)
def parsed_url(url: str) -> tuple[httpx.URL, str | None]:
    """``url`` parsed, and the ``Host`` header value for it (None without a host)."""
    parsed = httpx.URL(url)
    return parsed, parsed.netloc.decode("ascii") if parsed.host else None


def json_request(
    url: str,
    headers: Mapping[str, str],
    body: Any,
    extensions: dict[str, Any] | None = None,
) -> httpx.Request:
    """``httpx.Request("POST", url, headers=headers, json=body, extensions=extensions)``."""
    parsed, host = parsed_url(url)
    if body is None:  # to httpx, json=None is no body at all
        return httpx.Request("POST", parsed, headers=headers, extensions=extensions)
    data = _encode(body).encode()
    named = {name.lower() for name in headers}
    fields: list[tuple[str, str]] = []
    if host is not None and "host" not in named:
        fields.append(("Host", host))
    fields += headers.items()
    if "content-length" not in named:
        fields.append(("Content-Length", str(len(data))))
    if "content-type" not in named:
        fields.append(("Content-Type", "application/json"))
    request = httpx.Request(
        "POST", parsed, headers=fields, stream=httpx.ByteStream(data), extensions=extensions
    )
    request.read()  # the body is in memory: ``request.content`` is readable, as httpx's own
    return request


def request_for(
    url: str,
    headers: Mapping[str, str],
    content: Mapping[str, Any],
    extensions: dict[str, Any] | None = None,
) -> httpx.Request:
    """A POST of ``content`` (``httpx.Request`` keyword arguments: ``json=``, or
    ``files=``/``data=`` for multipart, ...); JSON through :func:`json_request`."""
    if content.keys() == {"json"}:
        return json_request(url, headers, content["json"], extensions)
    parsed, _ = parsed_url(url)
    return httpx.Request("POST", parsed, headers=headers, extensions=extensions, **content)
