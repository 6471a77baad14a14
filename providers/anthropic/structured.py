"""OpenAI's ``response_format`` in Anthropic's terms.

- ``json_schema``: Anthropic's structured outputs, ``output_config.format``
  (``{"type": "json_schema", "schema": ...}``); the reply is the JSON text.
  (Anthropic documents it for its 4.5-generation models and later; an older
  model answers 400, which is its own refusal.)
- ``json_object``: Anthropic has no schema-less JSON mode, and its structured
  outputs take only closed schemas, so the request forces one tool whose
  input is any object; the reply's call to it comes back as the message's
  JSON ``content`` (``finish_reason="stop"``), streamed as content deltas.
  It cannot be combined with other tools or with extended thinking (which
  forbids a forced tool): both are refused before any I/O.
- ``text``: the default; nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.adapter import Request, errors

JSON_TOOL = "json_object"
_JSON_TOOL_DEFINITION = {
    "name": JSON_TOOL,
    "description": "Reply with the JSON object that answers the request.",
    "input_schema": {"type": "object"},
}


def _invalid(request: Request, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(
        f"{request.provider}: {message}", provider=request.provider, model=request.model
    )


def json_mode(request: Request) -> bool:
    """Whether the call asked for ``response_format={"type": "json_object"}``."""
    value = request.params.get("response_format")
    return isinstance(value, Mapping) and value.get("type") == "json_object"


def add_response_format(request: Request, params: dict[str, Any], body: dict[str, Any]) -> None:
    """Translate (and remove) ``response_format`` from ``params`` into ``body``."""
    value = params.pop("response_format", None)
    kind = value.get("type") if isinstance(value, Mapping) else None
    if value is None or kind == "text":
        return
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _invalid(request, "response_format json_schema needs json_schema.schema")
        config = dict(params.pop("output_config", None) or {})
        if "format" in config:
            raise _invalid(request, "give response_format or output_config.format, not both")
        body["output_config"] = {**config, "format": {"type": "json_schema", "schema": schema}}
        return
    if kind != "json_object":
        raise _invalid(request, f"response_format type {kind!r} has no anthropic equivalent")
    if "tools" in body or "tool_choice" in body:
        raise _invalid(
            request,
            "response_format json_object is a forced tool here and cannot be combined "
            "with tools; use response_format json_schema",
        )
    thinking = params.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") not in (None, "disabled"):
        raise _invalid(
            request,
            "response_format json_object is a forced tool here, which extended thinking "
            "forbids; use response_format json_schema",
        )
    body["tools"] = [dict(_JSON_TOOL_DEFINITION)]
    body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
