"""The OpenAI-shaped replies both benchmark targets send, encoded once.

A chat completion, and a stream of :data:`STREAM_CHUNKS` ``chat.completion.chunk``
events (the last one carries ``finish_reason`` and ``usage``) ending in
``data: [DONE]``; asked for :data:`SHORT_MODEL`, a stream of
:data:`SHORT_STREAM_CHUNKS` events instead (a short answer, as most are).
"""

from __future__ import annotations

import json
from typing import Any

STREAM_CHUNKS = 100
SHORT_STREAM_CHUNKS = 5
SHORT_MODEL = "bench-short"  # the model name that asks for the short stream
CREATED = 1_700_000_000


def completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A short benchmark reply."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }


def _chunk(model: str, index: int, chunks: int) -> dict[str, Any]:
    last = index == chunks - 1
    delta: dict[str, Any] = {"content": f"tok{index} "}
    if index == 0:
        delta["role"] = "assistant"
    event: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
    }
    if last:
        event["usage"] = {"prompt_tokens": 5, "completion_tokens": chunks, "total_tokens": 105}
    return event


def completion_body(model: str) -> bytes:
    return json.dumps(completion(model)).encode()


def stream_events(model: str, chunks: int = STREAM_CHUNKS) -> list[bytes]:
    """One ``data:`` event per chunk, then ``data: [DONE]``; each a separate write."""
    events = [
        b"data: " + json.dumps(_chunk(model, i, chunks)).encode() + b"\n\n" for i in range(chunks)
    ]
    return [*events, b"data: [DONE]\n\n"]


def streams(model: str) -> dict[int, list[bytes]]:
    """The events of each stream a target sends, by length: ``model``'s long one
    and :data:`SHORT_MODEL`'s short one."""
    return {
        STREAM_CHUNKS: stream_events(model),
        SHORT_STREAM_CHUNKS: stream_events(SHORT_MODEL, SHORT_STREAM_CHUNKS),
    }


def stream_length(body: bytes) -> int | None:
    """How many chunks a chat request body asks to be streamed; None: no stream."""
    data = json.loads(body or b"{}")
    if not isinstance(data, dict) or data.get("stream") is not True:
        return None
    return SHORT_STREAM_CHUNKS if data.get("model") == SHORT_MODEL else STREAM_CHUNKS
