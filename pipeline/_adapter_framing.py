"""Incremental line, SSE, NDJSON and JSON-array framers: bytes in any split, events out.

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


class JSONArraySplitter:
    """The objects of a streamed top-level JSON array (or of objects sent one after
    another), as texts, from bytes in any split. Only structure is scanned here;
    each object is decoded by the caller."""

    __slots__ = ("_base", "_buffer", "_depth", "_escape", "_opened", "_scan", "_start", "_string")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scan = 0
        self._start = -1  # where the object being read starts in the buffer
        self._depth = 0
        self._base = 0  # the depth objects live at: 1 inside an array, 0 bare
        self._opened = False
        self._string = False
        self._escape = False

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer
        buffer += data
        out: list[str] = []
        for i in range(self._scan, len(buffer)):
            byte = buffer[i]
            if self._string:
                if self._escape:
                    self._escape = False
                elif byte == 0x5C:  # backslash
                    self._escape = True
                elif byte == 0x22:
                    self._string = False
            elif self._depth > self._base:
                self._inside(byte, buffer, i, out)
            elif byte not in b" \t\r\n":
                self._between(byte, i)
        if self._start < 0:
            del buffer[:]
        else:
            del buffer[: self._start]
            self._start = 0
        self._scan = len(buffer)
        return out

    def _inside(self, byte: int, buffer: bytearray, i: int, out: list[str]) -> None:
        if byte == 0x22:
            self._string = True
        elif byte in b"{[":
            self._depth += 1
        elif byte in b"}]":
            self._depth -= 1
            if self._depth == self._base:
                out.append(buffer[self._start : i + 1].decode("utf-8"))
                self._start = -1

    def _between(self, byte: int, i: int) -> None:
        if byte == ord("{"):
            self._start = i
            self._depth += 1
        elif byte == ord("[") and not self._opened:
            self._opened = True
            self._base = self._depth = 1
        elif byte == ord(",") and self._depth == 1:
            pass
        elif byte == ord("]") and self._depth == 1:
            self._depth = self._base = 0
        else:
            raise ValueError(f"unexpected {chr(byte)!r} between streamed JSON objects")

    def close(self) -> list[str]:
        if self._depth or self._string or self._start >= 0:
            raise ValueError("the body ended inside a JSON array or object")
        return []
