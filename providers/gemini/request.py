"""The ``generateContent`` and ``embedContent`` bodies for an OpenAI-shaped request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.adapter import (
    Request,
)
from providers.gemini.messages import Conversation, invalid


def _tools(request: Request, tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for k, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(request, f"tools[{k}] must be a function tool with a name")
        declaration = {"name": function["name"]}
        declaration.update({f: function[f] for f in ("description", "parameters") if f in function})
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def _tool_choice(request: Request, choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _TOOL_MODES:
        return {"mode": _TOOL_MODES[choice]}
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise invalid(
            request,
            "tool_choice must be 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}",
        )
    return {"mode": "ANY", "allowedFunctionNames": [name]}


def _response_format(request: Request, value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    schema = value.get("json_schema") if isinstance(value, Mapping) else None
    if kind == "json_schema" and isinstance(schema, Mapping) and "schema" in schema:
        return {"responseMimeType": "application/json", "responseJsonSchema": schema["schema"]}
    raise invalid(
        request,
        "response_format must be {'type': 'text' | 'json_object'} or "
        "{'type': 'json_schema', 'json_schema': {'schema': ...}}",
    )


def _renamed(name: str) -> Callable[[Request, Any], dict[str, Any]]:
    return lambda request, value: {name: value}


def _stop(request: Request, value: Any) -> dict[str, Any]:
    return {"stopSequences": [value] if isinstance(value, str) else list(value)}


# OpenAI parameter -> the generationConfig entries it becomes.
_GENERATION: dict[str, Callable[[Request, Any], dict[str, Any]]] = {
    "temperature": _renamed("temperature"),
    "top_p": _renamed("topP"),
    "top_k": _renamed("topK"),
    "max_tokens": _renamed("maxOutputTokens"),
    "max_completion_tokens": _renamed("maxOutputTokens"),
    "stop": _stop,
    "n": _renamed("candidateCount"),
    "seed": _renamed("seed"),
    "presence_penalty": _renamed("presencePenalty"),
    "frequency_penalty": _renamed("frequencyPenalty"),
    "response_format": _response_format,
}

_UNSUPPORTED = frozenset({"logprobs", "top_logprobs", "logit_bias"})


def _check_supported(request: Request, params: Mapping[str, Any]) -> None:
    for name in _UNSUPPORTED.intersection(params):
        if params[name] is not None and params[name] is not False:
            raise invalid(request, f"{name} is not supported for Gemini")
    if params.get("parallel_tool_calls") is False:
        raise invalid(request, "Gemini cannot turn parallel tool calls off")


# Parameters read by the chat body builder itself, never passed through.
_CHAT_OWN = frozenset(
    {*_GENERATION, *_UNSUPPORTED, "tools", "tool_choice", "generationConfig"}
    | {"parallel_tool_calls", "stream_options"}  # honoured: Gemini always sends usage
)


def chat_body(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    _check_supported(request, params)
    conversation = Conversation(request)
    for i, message in enumerate(request.messages):
        conversation.add(i, message)
    body: dict[str, Any] = {"contents": conversation.contents}
    if conversation.system:
        body["systemInstruction"] = {"parts": conversation.system, "role": "user"}
    if params.get("tools"):
        body["tools"] = _tools(request, params["tools"])
    if params.get("tool_choice") is not None:
        tool_config = dict(params.get("toolConfig") or {})
        tool_config["functionCallingConfig"] = _tool_choice(request, params["tool_choice"])
        params["toolConfig"] = tool_config
    generation = params.get("generationConfig")
    config: dict[str, Any] = dict(generation or {})
    for name, convert in _GENERATION.items():
        if params.get(name) is not None:
            config.update(convert(request, params[name]))
    if config or generation is not None:
        body["generationConfig"] = config
    body.update({k: v for k, v in params.items() if k not in _CHAT_OWN and v is not None})
    return body


def model_path(request: Request) -> str:
    return request.model if "/" in request.model else f"models/{request.model}"


_EMBEDDING_NAMES = {"dimensions": "outputDimensionality"}


def _embedding_entry(request: Request, text: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """One EmbedContentRequest; ``dimensions`` is renamed, Gemini fields pass as given."""
    if not isinstance(text, str):
        raise invalid(request, "embedding input must be text (token ids are not supported)")
    if params.get("encoding_format") not in (None, "float"):
        raise invalid(request, "Gemini returns float embeddings only")
    entry: dict[str, Any] = {"model": model_path(request), "content": {"parts": [{"text": text}]}}
    entry.update(
        {
            _EMBEDDING_NAMES.get(name, name): value
            for name, value in params.items()
            if value is not None and name != "encoding_format"
        }
    )
    return entry


def embedding_body(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    if isinstance(request.input, str):
        return _embedding_entry(request, request.input, params)
    return {"requests": [_embedding_entry(request, text, params) for text in request.input]}
