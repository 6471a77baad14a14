"""Middlewares and how they are bound into one handler, once."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Sequence
from typing import Protocol

from pipeline._dispatch import Result
from pipeline._request import Request


class Handler(Protocol):
    """``async (request) -> response``: the rest of the chain, as a middleware sees it."""

    def __call__(self, request: Request, /) -> Awaitable[Result]: ...


class Middleware(Protocol):
    """``async (request, call_next) -> response``: a plain function or an object.

    ``call_next`` is stateless: it may be awaited more than once (retry), or
    with an evolved request (fallback).
    """

    def __call__(self, request: Request, call_next: Handler, /) -> Awaitable[Result]: ...


def _layer(middleware: Middleware, call_next: Handler) -> Handler:
    # Returns the middleware's awaitable directly: a layer costs the middleware's
    # own await and nothing more.
    def handle(request: Request, /) -> Awaitable[Result]:
        return middleware(request, call_next)

    return handle


def bind(middlewares: Sequence[Middleware], terminal: Handler) -> Handler:
    """One handler for the whole chain; the first middleware is the outermost."""
    handler = terminal
    for middleware in reversed(middlewares):
        handler = _layer(middleware, handler)
    return handler


def describe(layer: object) -> str:
    """How a layer shows in ``repr(pipeline)``: a function's name, else the object's repr."""
    if inspect.isfunction(layer) or inspect.ismethod(layer):
        return layer.__qualname__
    return repr(layer)
