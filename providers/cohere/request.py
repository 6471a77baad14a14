"""OpenAI-shaped requests as ``/v2/chat`` and ``/v2/embed`` bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.adapter import (
    Request,
    errors,
)

DEFAULT_INPUT_TYPE = "search_document"

_ROLES: dict[str, str] = {"developer": "system"}
_V2_ROLES = frozenset({"system", "user", "assistant", "tool"})


def _invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(message, provider=request.provider, model=request.model)


# -- building requests --------------------------------------------------------


def _parts(request: Request, index: int, content: Any) -> Any:
    """A string as is; OpenAI's text and image_url parts in v2's shape."""
    if content is None or isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            image = dict(image) if isinstance(image, Mapping) else {"url": image}
            if not isinstance(image.get("url"), str):
                raise _invalid(request, f"messages[{index}]: an image_url part needs a url")
            out.append({"type": "image_url", "image_url": image})
        else:
            raise _invalid(
                request, f"messages[{index}]: cohere takes text and image_url parts, got {kind!r}"
            )
    return out


def _text(request: Request, index: int, content: Any) -> str:
    """A tool result as one string."""
    parts = _parts(request, index, content)
    if parts is None or isinstance(parts, str):
        return parts or ""
    if any(p["type"] != "text" for p in parts):
        raise _invalid(request, f"messages[{index}]: a tool result takes text parts only")
    return "\n".join(p["text"] for p in parts)


def _tool_calls_out(request: Request, index: int, calls: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for position, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if function is None or not isinstance(name, str) or not isinstance(call.get("id"), str):
            raise _invalid(
                request, f"messages[{index}].tool_calls[{position}] needs an id and function.name"
            )
        arguments = function.get("arguments")
        out.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments or {}),
                },
            }
        )
    return out


def cohere_messages(request: Request) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        role = str(message.get("role"))
        role = _ROLES.get(role, role)
        if role not in _V2_ROLES:
            raise _invalid(request, f"messages[{i}]: cohere has no {role!r} role")
        item: dict[str, Any] = {"role": role}
        if role == "tool":
            item["tool_call_id"] = message.get("tool_call_id")
            item["content"] = _text(request, i, message.get("content"))
            out.append(item)
            continue
        content = _parts(request, i, message.get("content"))
        calls = message.get("tool_calls")
        if role != "assistant":
            item["content"] = content if content is not None else ""  # v2 requires it
        elif content:
            item["content"] = content
        elif not calls:
            continue  # an assistant turn with neither content nor tool calls said nothing
        if calls:
            item["tool_calls"] = _tool_calls_out(request, i, calls)
            if message.get("reasoning_content"):
                item["tool_plan"] = message["reasoning_content"]
        out.append(item)
    return out


def _stop(request: Request, value: Any) -> Any:
    return [value] if isinstance(value, str) else list(value)


_TOOL_CHOICES: dict[str, str | None] = {"auto": None, "required": "REQUIRED", "none": "NONE"}


def _tool_choice(request: Request, value: Any) -> Any:
    if isinstance(value, str) and value in _TOOL_CHOICES:
        return _TOOL_CHOICES[value]
    raise _invalid(
        request,
        f"cohere cannot force one tool: tool_choice must be auto, required or none, not {value!r}",
    )


def _response_format(request: Request, value: Any) -> Any:
    kind = value.get("type") if isinstance(value, Mapping) else None
    schema = value.get("json_schema") if isinstance(value, Mapping) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema" and isinstance(schema, Mapping) and "schema" in schema:
        return {"type": "json_object", "json_schema": schema["schema"]}
    raise _invalid(request, f"response_format {value!r} has no cohere equivalent")


_CONVERT: dict[str, Callable[[Request, Any], Any]] = {
    "stop": _stop,
    "tool_choice": _tool_choice,
    "response_format": _response_format,
}
# OpenAI's names are renamed by the adapter's policy; these are conveniences.
_RENAMED: dict[str, str] = {"top_k": "k", "stop": "stop_sequences"}


def _place_params(request: Request, params: Mapping[str, Any], body: dict[str, Any]) -> None:
    for key, given in params.items():
        if given is None:
            continue
        value = _CONVERT[key](request, given) if key in _CONVERT else given
        if value is not None:
            body[_RENAMED.get(key, key)] = value


def chat_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": cohere_messages(request),
        "stream": request.stream,
    }
    _place_params(request, params, body)
    return body


def embed_body(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    texts = [request.input] if isinstance(request.input, str) else list(request.input or ())
    if not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid(request, "cohere embeds text: input must be a string or a list of strings")
    body: dict[str, Any] = {
        "model": request.model,
        "texts": texts,
        "input_type": DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    _place_params(request, params, body)
    return body
