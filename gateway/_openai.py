"""OpenAI's routes: chat (JSON or SSE), embeddings, images, audio, models.

Every body is checked before any upstream call: it must be a JSON object
with a non-empty string ``model`` and the endpoint's input, of the right
types; the pipeline then checks the parameters (also before any I/O). A body
may not set the credentials or the upstream address (``api_key``,
``api_base``, ``api_version``, ``provider``, ``extra_headers``,
``azure_ad_token``): they belong to the gateway's config, and so do prices
(``metadata`` may not carry Costs' per-call price override). ``metadata``,
``cache`` and ``timeout`` are the pipeline's per-call options; every other
key is a parameter, by OpenAI's name, for the adapter to translate.

The call runs until it answers or the client disconnects, whichever is
first: a client that leaves cancels the upstream call.
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway._errors import answer
from gateway._guard import SCOPE_KEY, Call
from gateway._sse import EventStream
from middlewares.usage.costs import PRICE_KEYS
from pipeline import ChatChunk, Pipeline, Stream, errors

T = TypeVar("T")

FORBIDDEN = ("api_key", "api_base", "api_version", "provider", "extra_headers", "azure_ad_token")
CALL_OPTIONS = ("metadata", "cache", "timeout")
GONE = Response(status_code=499)  # the client left; nothing is sent
DONE = b"data: [DONE]\n\n"


class BadBody(errors.InvalidRequestError):
    """The HTTP body itself is wrong (JSON, a missing or mistyped field)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def complete(pipe: Pipeline, model: str, messages: Any, **kwargs: Any) -> Awaitable[Any]:
    """``pipe.acompletion`` with ``stream`` known only at run time."""
    method: Any = pipe.acompletion
    result: Awaitable[Any] = method(model, messages, **kwargs)
    return result


def call_of(request: Request) -> Call:
    call: Call = request.scope[SCOPE_KEY]
    return call


async def json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except ValueError:
        raise BadBody("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadBody("the request body must be a JSON object")
    return data


def take(body: dict[str, Any], key: str, what: str) -> str:
    """Pop a required non-empty string."""
    value = body.pop(key, None)
    if not isinstance(value, str) or not value:
        raise BadBody(f"{key} is required: {what}", key)
    return value


def call_options(body: dict[str, Any]) -> dict[str, Any]:
    """Refuse what a caller may not set; take the pipeline's per-call options out."""
    for key in FORBIDDEN:
        if key in body:
            raise BadBody(f"{key} cannot be set through the gateway", key)
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping):
        for key in PRICE_KEYS:  # a caller pricing its own calls would dodge every budget
            if key in metadata:
                raise BadBody(f"metadata.{key} cannot be set through the gateway", "metadata")
    return {key: body.pop(key) for key in CALL_OPTIONS if key in body}


async def until_disconnect(
    request: Request, call: Call, function: Callable[[], Awaitable[T]]
) -> T | None:
    """``await function()``, cancelled if the client disconnects first (then None)."""
    with anyio.CancelScope() as scope:
        call.disconnect.watch(request.receive, scope)
        try:
            return await function()
        finally:
            call.disconnect.watch(request.receive, None)
    return None


async def run(
    request: Request,
    call: Call,
    model: str,
    method: Callable[..., Awaitable[T]],
    *args: Any,
    **kwargs: Any,
) -> T | None:
    """Admit the caller, then ``method(model, *args, **kwargs)`` until the client
    disconnects (None); the response's cost is noted for the caller's budget."""
    call.admit(model)
    result = await until_disconnect(request, call, lambda: method(model, *args, **kwargs))
    call.cost = getattr(result, "cost", None)
    return result


def _event(data: Any) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def encode_chunk(include_usage: bool, chunk: ChatChunk) -> bytes | None:
    data = chunk.to_dict()
    if not include_usage and "usage" in data:
        if not chunk.choices:
            return None  # the usage-only chunk: sent only when asked for, as OpenAI does
        del data["usage"]
    return _event(data)


def error_event(exc: BaseException) -> bytes:
    return _event(answer(exc).body)


def stream_response(
    call: Call,
    stream: Stream[Any],
    encode: Callable[[Any], bytes | None],
    error: Callable[[BaseException], bytes],
    done: bytes | None,
) -> EventStream:
    def on_end(failed: bool) -> None:
        call.failed = failed
        call.cost = getattr(stream, "cost", None)

    return EventStream(
        stream,
        encode=encode,
        error_event=error,
        done=done,
        ping_interval=call.generation.server.ping_interval,
        on_end=on_end,
        disconnect=call.disconnect,
    )


def _include_usage(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise BadBody(
            'stream_options must be an object like {"include_usage": true}', "stream_options"
        )
    return bool(options.get("include_usage", False))


async def chat_completions(request: Request) -> Response:
    call = call_of(request)
    body = await json_object(request)
    model = take(body, "model", "a model name")
    messages = body.pop("messages", None)
    if not isinstance(messages, list) or not messages:
        raise BadBody("messages is required: a non-empty list of messages", "messages")
    stream = body.pop("stream", False)
    if not isinstance(stream, bool):
        raise BadBody("stream must be true or false", "stream")
    usage = _include_usage(body.pop("stream_options", None))
    options = call_options(body)
    pipe = call.generation.pipeline
    result = await run(
        request, call, model, partial(complete, pipe), messages, stream=stream, **options, **body
    )
    if result is None:
        return GONE
    if isinstance(result, Stream):
        return stream_response(call, result, partial(encode_chunk, usage), error_event, DONE)
    return JSONResponse(result.to_dict())


def _base64_floats(vector: list[float]) -> str:
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


async def embeddings(request: Request) -> Response:
    call = call_of(request)
    body = await json_object(request)
    model = take(body, "model", "a model name")
    if "input" not in body:
        raise BadBody("input is required: a string or a list of strings", "input")
    text = body.pop("input")
    encoding = body.pop("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadBody("encoding_format must be 'float' or 'base64'", "encoding_format")
    options = call_options(body)
    pipe = call.generation.pipeline
    result = await run(request, call, model, pipe.aembedding, text, **options, **body)
    if result is None:
        return GONE
    data = result.to_dict()
    if encoding == "base64":  # what the openai SDK asks for by default, and decodes itself
        for item in data["data"]:
            item["embedding"] = _base64_floats(item["embedding"])
    return JSONResponse(data)


async def image_generations(request: Request) -> Response:
    call = call_of(request)
    body = await json_object(request)
    model = take(body, "model", "a model name")
    prompt = take(body, "prompt", "a non-empty string")
    options = call_options(body)
    pipe = call.generation.pipeline
    result = await run(request, call, model, pipe.aimage_generation, prompt, **options, **body)
    return GONE if result is None else JSONResponse(result.to_dict())


async def speech(request: Request) -> Response:
    call = call_of(request)
    body = await json_object(request)
    model = take(body, "model", "a model name")
    text = take(body, "input", "the text to speak")
    options = call_options(body)
    pipe = call.generation.pipeline
    result = await run(request, call, model, pipe.aspeech, text, **options, **body)
    if result is None:
        return GONE
    return Response(result.content, media_type=result.content_type)


_NUMBER_FIELDS = frozenset({"temperature"})


async def transcriptions(request: Request) -> Response:
    call = call_of(request)
    fields: dict[str, Any] = {}
    try:
        async with request.form() as form:  # closes the uploaded file's spool
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise BadBody("file is required: the audio, as a multipart file field", "file")
            audio = (upload.filename or "audio", await upload.read(), upload.content_type)
            for key in {k for k in form if k != "file"}:
                values = [v for v in form.getlist(key) if isinstance(v, str)]
                name = key.removesuffix("[]")
                fields[name] = values if key.endswith("[]") else values[-1]
    except errors.DispatchError:
        raise
    except Exception:  # python-multipart's own parse errors
        raise BadBody("the request body must be multipart/form-data") from None
    model = take(fields, "model", "a model name")
    for key in _NUMBER_FIELDS & fields.keys():
        try:
            fields[key] = float(fields[key])
        except ValueError:
            raise BadBody(f"{key} must be a number", key) from None
    text_only = fields.get("response_format") == "text"
    options = call_options(fields)
    pipe = call.generation.pipeline
    result = await run(request, call, model, pipe.atranscription, audio, **options, **fields)
    if result is None:
        return GONE
    if text_only:
        return PlainTextResponse(result.text)
    return JSONResponse(result.to_dict())


def model_ids(pipeline: Pipeline) -> dict[str, str]:
    """Model id -> owner: router groups, then each provider's declared models."""
    found: dict[str, str] = {}
    for layer in pipeline.middlewares:
        groups = getattr(layer, "groups", None)
        if isinstance(groups, (Mapping, list, tuple, frozenset, set)):
            for name in groups:
                found.setdefault(str(name), "dispatchline")
    adapters = pipeline.registry.adapters
    for provider in sorted(adapters):
        for model in sorted(adapters[provider].models):
            found.setdefault(f"{provider}/{model}", provider)
    return found


def _visible(call: Call) -> dict[str, str]:
    ids = model_ids(call.generation.pipeline)
    return {k: v for k, v in ids.items() if call.key.allows(k)}


def _model(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


async def list_models(request: Request) -> Response:
    ids = _visible(call_of(request))
    return JSONResponse({"object": "list", "data": [_model(k, v) for k, v in ids.items()]})


async def get_model(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    owner = _visible(call_of(request)).get(model_id)
    if owner is None:
        raise errors.NotFoundError(f"the model {model_id!r} does not exist", code="model_not_found")
    return JSONResponse(_model(model_id, owner))
