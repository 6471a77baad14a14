"""Input checks made before any I/O: bad input is an InvalidRequestError, never a 400."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.errors import InvalidRequestError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _fail(message: str) -> InvalidRequestError:
    return InvalidRequestError(message)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(f"{name} must be a positive integer, got {value!r}")


def _number_in(low: float, high: float) -> Callable[[str, object], None]:
    def check(name: str, value: object) -> None:
        if not is_number(value) or not low <= value <= high:  # type: ignore[operator]
            raise _fail(f"{name} must be a number from {low} to {high}, got {value!r}")

    return check


def _stop(name: str, value: object) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, Sequence) and all(isinstance(s, str) for s in value):
        return
    raise _fail(f"{name} must be a string or a list of strings")


def _tools(name: str, value: object) -> None:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise _fail(f"{name} must be a list of tool definitions")
    for i, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _fail(
                f"{name}[{i}] must look like {{'type': 'function', 'function': {{'name': ...}}}}"
            )


# Known parameters and their check; unknown ones pass through to the provider.
_PARAMS: dict[str, Callable[[str, object], None]] = {
    "max_tokens": _positive_int,
    "max_completion_tokens": _positive_int,
    "n": _positive_int,
    "temperature": _number_in(0.0, 2.0),
    "top_p": _number_in(0.0, 1.0),
    "presence_penalty": _number_in(-2.0, 2.0),
    "frequency_penalty": _number_in(-2.0, 2.0),
    "dimensions": _positive_int,
    "stop": _stop,
    "tools": _tools,
}


def check_params(params: Mapping[str, Any]) -> None:
    for name, value in params.items():
        check = _PARAMS.get(name)
        if check is not None and value is not None:
            check(name, value)


def check_messages(messages: object) -> None:
    # ``type(x) is list/dict/str`` first: the usual shapes skip the ABC checks.
    if type(messages) is not list and (
        isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence)
    ):
        raise _fail("messages must be a list of {'role': ..., 'content': ...} dicts")
    if not messages:
        raise _fail("messages must not be empty")
    for i, message in enumerate(messages):
        if type(message) is not dict and not isinstance(message, Mapping):
            raise _fail(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role = message.get("role")
        if type(role) is not str or role not in ROLES:
            raise _fail(f"messages[{i}] needs a role, one of {sorted(ROLES)}; got {role!r}")
        content = message.get("content")
        if type(content) is str:
            pass
        elif content is None:
            if role != "assistant":
                raise _fail(f"messages[{i}] ({role}) needs content")
            if not message.get("tool_calls") and not message.get("function_call"):
                raise _fail(f"messages[{i}] (assistant) needs content or tool_calls")
        elif not isinstance(content, (str, Sequence)) or isinstance(content, bytes):
            raise _fail(f"messages[{i}].content must be a string or a list of parts")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _fail(f"messages[{i}] (tool) needs a tool_call_id")


def check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{name} must be a non-empty string")


def check_embedding_input(value: object) -> None:
    if isinstance(value, str):
        if value:
            return
        raise _fail("input must not be empty")
    if isinstance(value, Sequence) and value and not isinstance(value, bytes):
        if all(isinstance(v, str) and v for v in value):
            return
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return  # one input as token ids
    raise _fail("input must be a non-empty string or a non-empty list of non-empty strings")


def check_audio_file(value: object) -> None:
    if isinstance(value, (bytes, bytearray)) and value:
        return
    if (
        isinstance(value, tuple)
        and len(value) in (2, 3)
        and isinstance(value[0], str)
        and isinstance(value[1], (bytes, bytearray))
        and value[1]
    ):
        return
    raise _fail("file must be non-empty audio bytes or a (filename, bytes[, content_type]) tuple")
