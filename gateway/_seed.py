"""The seed dispatcher's web API, with its shapes, over the same pipeline.

- ``GET /api/v1/health``: ``{"status", "vendors": [{"name", "enabled"}], "timestamp"}``;
- ``GET /api/v1/vendors``: ``{"vendors": [...]}``;
- ``POST /api/v1/chat/completions`` and ``POST /api/v1/test/vendor``: a body of
  ``model``, ``messages``, ``temperature``, ``max_tokens``, ``top_p``,
  ``stop``, ``user`` and ``vendor`` (the provider to use; required for the
  vendor test), answered ``{"success": true, "data": {"content", "usage",
  "model", "vendor", "finish_reason", "created_at"}, "stats": {...}}`` or
  ``{"success": false, "error": "..."}`` with the error's status;
- ``POST /api/v1/chat/completions/stream``: server-sent events, one
  ``data: <text>`` per chunk (a multi-line piece as several ``data:`` lines),
  ``data: [ERROR] <message>`` on failure;
- ``GET /api/v1/stats``: the statistics (see :mod:`gateway._ops`).

Unlike the seed, an error answers with its real status (not always 500),
and an error before a stream's first chunk is answered with its status too.
"""

from __future__ import annotations

import contextlib
import time
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway._errors import answer
from gateway._openai import (
    GONE,
    BadBody,
    call_of,
    complete,
    json_object,
    run,
    stream_response,
)
from gateway._ops import gateway_of, stats_payload, vendors
from pipeline import ChatChunk, ChatResponse, Stream, StreamAccumulator, errors

_FIELDS = ("temperature", "max_tokens", "top_p", "stop", "user")


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _data(response: ChatResponse, vendor: str) -> dict[str, Any]:
    choice = response.choices[0] if response.choices else None
    usage = response.usage
    return {
        "content": (choice.message.content or "") if choice else "",
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
        "model": response.model,
        "vendor": vendor,
        "finish_reason": (choice.finish_reason or "") if choice else "",
        "created_at": _iso_now(),
    }


def _failure(exc: BaseException) -> Response:
    found = answer(exc)
    message = found.body["error"]["message"]
    return JSONResponse({"success": False, "error": message}, found.status, found.headers)


async def _request(request: Request) -> tuple[str, list[Any], dict[str, Any]]:
    body = await json_object(request)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadBody("model cannot be empty", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadBody("at least one message is required", "messages")
    options = {k: body[k] for k in _FIELDS if body.get(k) is not None}
    vendor = body.get("vendor")
    if vendor is not None:
        if not isinstance(vendor, str) or not vendor:
            raise BadBody("vendor must be a provider name", "vendor")
        options["provider"] = vendor
    return model, messages, options


async def _complete(request: Request, *, require_vendor: bool, stream: bool = False) -> Response:
    call = call_of(request)
    try:
        model, messages, options = await _request(request)
        vendor = options.get("provider")
        if require_vendor and vendor is None:
            raise BadBody("vendor is required: the provider to test", "vendor")
        if vendor is not None and vendor not in call.generation.pipeline.registry.adapters:
            raise BadBody(f"Vendor {vendor} not found", "vendor")
        pipe = call.generation.pipeline
        result = await run(
            request, call, model, partial(complete, pipe), messages, stream=stream, **options
        )
        if result is None:
            return GONE
        if isinstance(result, Stream):
            folded = StreamAccumulator()
            async with result:
                async for chunk in result:
                    folded.add(chunk)
            response = folded.response()
            response.model = response.model or result.model
        else:
            response = result
        call.cost = getattr(result, "cost", None)
        data = _data(response, vendor or result.provider)
    except errors.DispatchError as exc:
        call.failed = True
        return _failure(exc)
    stats = stats_payload(gateway_of(request))
    return JSONResponse({"success": True, "data": data, "stats": stats})


async def chat(request: Request) -> Response:
    return await _complete(request, require_vendor=False)


async def test_vendor(request: Request) -> Response:
    body_stream = False
    with contextlib.suppress(errors.DispatchError):  # _complete reports a bad body, seed-shaped
        body_stream = bool((await json_object(request)).get("stream"))
    return await _complete(request, require_vendor=True, stream=body_stream)


def _text_event(chunk: ChatChunk) -> bytes | None:
    text = "".join(c.delta.content or "" for c in chunk.choices)
    if not text:
        return None
    return "".join(f"data: {line}\n" for line in text.split("\n")).encode() + b"\n"


def _error_text(exc: BaseException) -> bytes:
    message = answer(exc).body["error"]["message"]
    return "".join(f"data: [ERROR] {line}\n" for line in message.split("\n")).encode() + b"\n"


async def chat_stream(request: Request) -> Response:
    call = call_of(request)
    try:
        model, messages, options = await _request(request)
        pipe = call.generation.pipeline
        result = await run(
            request, call, model, partial(complete, pipe), messages, stream=True, **options
        )
    except errors.DispatchError as exc:
        found = answer(exc)
        return Response(_error_text(exc), found.status, found.headers, "text/event-stream")
    if result is None:
        return GONE
    return stream_response(call, result, _text_event, _error_text, None)


async def health(request: Request) -> Response:
    gateway = gateway_of(request)
    if not gateway.ready:
        return JSONResponse({"status": "starting", "vendors": [], "timestamp": _iso_now()}, 503)
    listed = vendors(gateway.current)
    return JSONResponse({"status": "healthy", "vendors": listed, "timestamp": _iso_now()})


async def vendor_list(request: Request) -> Response:
    return JSONResponse({"vendors": vendors(gateway_of(request).current)})
