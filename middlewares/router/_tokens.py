"""Token estimates before a call, and the real count after it.

The estimate is deliberately cheap (about four characters per token, plus a
few per message), computed once per request: it decides ``tpm`` and
``max_input_tokens`` before any I/O, and the real usage replaces it in the
rate window once the response (or the stream) ends. For an exact count, pass
``Router(token_counter=...)`` any ``request -> int`` (a tokenizer you have
locally, such as tiktoken with its encodings cached).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pipeline import Request, Result

__all__ = ["Estimate", "TokenCounter", "estimate_prompt_tokens", "estimate_tokens", "used_tokens"]

TokenCounter = Callable[[Request], int]

CHARS_PER_TOKEN = 4
PER_MESSAGE = 4  # role and separators
PER_PART = 256  # an image or audio part: a rough flat charge


class Estimate(NamedTuple):
    prompt: int  # tokens in the prompt (messages, tools, input)
    completion: int  # the call's max_tokens, or 0 when it gave none

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _content_chars(content: Any) -> tuple[int, int]:
    """(characters of text, number of non-text parts) in a message's content."""
    if isinstance(content, str):
        return len(content), 0
    chars = parts = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                chars += len(part["text"])
            else:
                parts += 1
    return chars, parts


def estimate_prompt_tokens(request: Request) -> int:
    """About how many tokens the prompt of ``request`` holds."""
    chars = parts = 0
    for message in request.messages:
        text, extra = _content_chars(message.get("content"))
        chars += text
        parts += extra
        calls = message.get("tool_calls")
        if calls:
            chars += len(json.dumps(calls, default=str))
    tools = request.params.get("tools")
    if tools:
        chars += len(json.dumps(tools, default=str))
    given = request.input
    if isinstance(given, str):
        chars += len(given)
    elif isinstance(given, list):
        chars += sum(len(item) for item in given if isinstance(item, str))
    return -(-chars // CHARS_PER_TOKEN) + PER_MESSAGE * len(request.messages) + PER_PART * parts


def estimate_tokens(request: Request, counter: TokenCounter = estimate_prompt_tokens) -> Estimate:
    params = request.params
    asked = params.get("max_tokens", params.get("max_completion_tokens"))
    completion = asked if isinstance(asked, int) and not isinstance(asked, bool) else 0
    return Estimate(counter(request), max(completion, 0))


def used_tokens(result: Result) -> int | None:
    """The total tokens a response reports, or None when it reports none."""
    usage = getattr(result, "usage", None)
    total = getattr(usage, "total_tokens", None)
    return total if isinstance(total, int) and total > 0 else None
