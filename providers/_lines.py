"""Incremental line, SSE and NDJSON parsers: bytes in any split, events out.

Every stream decoder is built on these, so a body fed one byte at a time
yields exactly what it yields fed whole. Lines end in ``\\n``, ``\\r\\n`` or
``\\r`` (Gemini separates events with ``\\r\\n\\r\\n``).
"""

from __future__ import annotations

import json
from typing import Any

import attrs


class LineSplitter:
    """Complete lines out of arbitrary byte pieces; text is decoded per whole line."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer + data
        lines: list[str] = []
        start = 0
        size = len(buffer)
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                lines.append(buffer[start:lf].decode("utf-8"))
                start = lf + 1
                continue
            if cr == size - 1:
                break  # a lone trailing \r may be the first half of \r\n
            lines.append(buffer[start:cr].decode("utf-8"))
            start = cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
        self._buffer = buffer[start:]
        return lines

    def close(self) -> list[str]:
        """The body ended: whatever is left is the last line."""
        rest, self._buffer = self._buffer, b""
        if rest.endswith(b"\r"):
            rest = rest[:-1]
        return [rest.decode("utf-8")] if rest else []


@attrs.frozen
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Server-sent events, per the WHATWG event-stream rules."""

    __slots__ = ("_data", "_event", "_id", "_lines")

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        return self._events(self._lines.feed(data))

    def close(self) -> list[ServerSentEvent]:
        return self._events([*self._lines.close(), ""])

    def _events(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(
                        ServerSentEvent("\n".join(self._data), self._event or "message", self._id)
                    )
                self._data = []
                self._event = ""
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                self._id = value
        return events


class NDJSONParser:
    """Newline-delimited JSON (``application/x-ndjson``): one decoded value per line.

    Blank lines are skipped. A line that is not JSON raises ``ValueError``
    (``json.JSONDecodeError``), which an adapter's ``parsing`` block turns into
    ``ProviderResponseError``.
    """

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = LineSplitter()

    def feed(self, data: bytes) -> list[Any]:
        return [json.loads(line) for line in self._lines.feed(data) if line.strip()]

    def close(self) -> list[Any]:
        return [json.loads(line) for line in self._lines.close() if line.strip()]
