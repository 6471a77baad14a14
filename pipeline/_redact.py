"""The one redaction step: what a failed attempt raises keeps none of the credentials it sent.

The terminal calls :func:`redact` on every exception raised while it serves a
request (sending, reading, parsing, decoding a stream), with the credentials
that attempt actually sent (:func:`sent_secrets`): the per-call key, and every
auth header's value, wherever the adapter found it (call, configuration or
environment). It scrubs those secrets from the message of the exception and of
every exception it chains to (``__cause__``, ``__context__``, a group's
members), and strips the auth headers from any ``httpx.Request`` or
``httpx.Response`` those exceptions keep.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx

from pipeline._request import Request
from pipeline._secrets import scrub
from pipeline.errors import DispatchError

__all__ = ["AUTH_HEADERS", "redact", "sent_secrets"]

# Where the built-in adapters (and OpenAI-style servers) carry a credential.
AUTH_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")


def sent_secrets(request: Request, http_request: httpx.Request | None) -> tuple[str, ...]:
    """The credentials one attempt carried: the per-call key and each auth header's
    value (the token alone too, for ``Bearer <token>``)."""
    found = list(request.secrets())
    if http_request is not None:
        headers = http_request.headers
        for name in AUTH_HEADERS:
            value = headers.get(name)
            if value:
                found.append(value)
                token = value.rpartition(" ")[2]
                if token != value:
                    found.append(token)
    return tuple(found)


def _without_auth(request: httpx.Request) -> httpx.Request:
    """A copy of ``request`` without its auth headers (the original, which the
    transport or a test may hold, is left as it was)."""
    headers = [(k, v) for k, v in request.headers.multi_items() if k not in AUTH_HEADERS]
    return httpx.Request(
        request.method,
        request.url,
        headers=headers,
        stream=request.stream,
        extensions=request.extensions,
    )


def _strip(exc: BaseException) -> None:
    """Replace the httpx request an exception keeps (as ``request``, or through its
    ``response``) with a copy without auth headers; strip them from the response."""
    try:
        kept = getattr(exc, "request", None)
    except RuntimeError:  # httpx.RequestError.request when none was attached
        kept = None
    response = getattr(exc, "response", None)
    if isinstance(response, httpx.Response):
        for name in AUTH_HEADERS:
            if name in response.headers:
                del response.headers[name]
        if kept is None:
            kept = response._request
    if not isinstance(kept, httpx.Request) or not any(h in kept.headers for h in AUTH_HEADERS):
        return
    clean = _without_auth(kept)
    if isinstance(exc, httpx.HTTPError):
        exc.request = clean
    if isinstance(response, httpx.Response) and response._request is kept:
        response.request = clean


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable from it, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        unified = getattr(current, "unified_error", None)
        if isinstance(unified, BaseException):
            todo.append(unified)


def redact(exc: BaseException, secrets: Sequence[str]) -> None:
    """Scrub ``secrets`` from ``exc`` and its chain, in place; strip auth headers."""
    for current in _chain(exc):
        if isinstance(current, DispatchError):
            current.redact(secrets)
        elif any(isinstance(arg, str) for arg in current.args):
            args = current.args
            current.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in args)
        _strip(current)
