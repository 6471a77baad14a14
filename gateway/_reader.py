"""Reading a parsed config file strictly: every value typed, every unknown key an error.

A :class:`Table` wraps one table of the file. Getters take a key, check its
type (and range), and remember that the key was read; :meth:`Table.done`
then refuses whatever was not read, suggesting the closest known key. Every
error names the file, the line where it can be found, and the dotted key.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pipeline import Secret

T = TypeVar("T")

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MISSING: Any = object()


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, line and key."""

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.file = file


class Locator:
    """Best-effort line numbers for dotted keys in a TOML or JSON text."""

    def __init__(self, path: Path | None, text: str) -> None:
        self._path = path
        self._lines = text.splitlines()

    def error(self, key: str, message: str) -> ConfigError:
        file = str(self._path) if self._path is not None else None
        return ConfigError(f"{self.where(key)}{key}: {message}", key=key, file=file)

    def where(self, key: str) -> str:
        """``"file:line: "`` (or ``"file: "``) to put before a message about ``key``."""
        if self._path is None:
            return ""
        line = self._line(key)
        return f"{self._path}:{line}: " if line else f"{self._path}: "

    def _line(self, key: str) -> int | None:
        parts = key.split(".")
        while parts:
            found = self._find(parts)
            if found:
                return found
            parts = parts[:-1]  # the key is absent (a missing one): point at its table
        return None

    def _find(self, parts: list[str]) -> int | None:
        names = [p.split("[")[0] for p in parts]

        def nth(part: str) -> int:  # "keys[2]" is the third [[keys]] table
            return int(part.split("[")[1].rstrip("]")) if "[" in part else 0

        def header(table: list[str]) -> re.Pattern[str]:
            joined = r"\s*\.\s*".join(re.escape(n) for n in table)
            return re.compile(r"^\s*\[\[?\s*" + joined + r"\s*\]\]?\s*(#.*)?$")

        own = header(names)
        table, seen, wanted = header(names[:-1]), -1, nth(parts[-2]) if len(parts) > 1 else 0
        assign = re.compile(r"^\s*[\"']?" + re.escape(names[-1]) + r"[\"']?\s*[=:]")
        dotted = re.compile(r"^\s*" + r"\s*\.\s*".join(map(re.escape, names)) + r"\s*=")
        own_seen, in_table = -1, len(parts) == 1
        for number, text in enumerate(self._lines, start=1):
            if own.match(text):
                own_seen += 1
                if own_seen == nth(parts[-1]):
                    return number
            if dotted.match(text) and "[" not in parts[-1]:
                return number
            if text.lstrip().startswith("["):
                if len(parts) > 1 and table.match(text):
                    seen += 1
                    in_table = seen == wanted
                else:
                    in_table = False
            elif in_table and assign.match(text):
                return number
        return None


def expand_env(value: str, key: str, fail: Callable[[str, str], ConfigError]) -> str:
    """``${NAME}`` and ``${NAME:-default}`` from the environment; unset without a default fails."""

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None:
            return found
        if default is not None:
            return default
        raise fail(key, f"environment variable {name} is not set (written as ${{{name}}})")

    return _ENV.sub(sub, value) if "${" in value else value


class Table:
    """One table of a config file, read key by key."""

    def __init__(self, data: Mapping[str, Any], key: str, locator: Locator) -> None:
        self._data = data
        self._key = key
        self._locator = locator
        self._read: set[str] = set()

    # -- errors --------------------------------------------------------------

    def path(self, key: str) -> str:
        return f"{self._key}.{key}" if self._key else key

    def error(self, key: str, message: str) -> ConfigError:
        """An error about ``key`` of this table (``""``: the table itself)."""
        return self._fail(self.path(key) if key else self._key, message)

    def _fail(self, dotted: str, message: str) -> ConfigError:
        return self._locator.error(dotted, message)

    # -- raw access ----------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def keys(self) -> list[str]:
        return list(self._data)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self._read.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, "is required")
            return default
        return self._expand(self._data[key], self.path(key))

    def _expand(self, value: Any, dotted: str) -> Any:
        if isinstance(value, str):
            return expand_env(value, dotted, self._fail)
        if isinstance(value, list):
            return [self._expand(v, f"{dotted}[{i}]") for i, v in enumerate(value)]
        return value

    # -- typed getters -------------------------------------------------------

    def get(
        self, key: str, kind: str, check: Callable[[Any], bool], default: Any = _MISSING
    ) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not check(value):
            raise self.error(key, f"expected {kind}, got {value!r}")
        return value

    def text(self, key: str, default: Any = _MISSING) -> Any:
        return self.get(
            key, "a non-empty string", lambda v: isinstance(v, str) and v != "", default
        )

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        return self.get(key, "true or false", lambda v: isinstance(v, bool), default)

    def integer(self, key: str, default: Any = _MISSING, *, low: int = 1, high: int = 2**62) -> Any:
        def check(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

        bounds = f"an integer from {low}" + (f" to {high}" if high < 2**62 else " up")
        return self.get(key, bounds, check, default)

    def number(self, key: str, default: Any = _MISSING, *, positive: bool = True) -> Any:
        def check(v: Any) -> bool:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            return ok and (v > 0 if positive else v >= 0)

        value = self.get(key, "a positive number" if positive else "a number >= 0", check, default)
        return float(value) if isinstance(value, int) else value

    def secret(self, key: str, default: Any = _MISSING) -> Any:
        """A credential: a non-empty string, kept as a :class:`Secret`. An error
        about it never shows the value."""
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not value:
            got = "an empty one" if value == "" else f"a {type(value).__name__}"
            raise self.error(key, f"expected a non-empty string, got {got}")
        return Secret(value)

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        def check(v: Any) -> bool:
            return isinstance(v, list) and all(isinstance(s, str) and s for s in v)

        value = self.get(key, "a list of non-empty strings", check, default)
        return tuple(value) if isinstance(value, list) else value

    def string_map(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.error(key, "expected a table of strings")  # its values may be secret
        return {k: expand_env(v, f"{self.path(key)}.{k}", self._fail) for k, v in value.items()}

    def table(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {value!r}")
        return Table(value, self.path(key), self._locator)

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``); absent is empty."""
        value = self.raw(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, "expected an array of tables ([[...]])")
        return [Table(v, f"{self.path(key)}[{i}]", self._locator) for i, v in enumerate(value)]

    def items(self) -> Iterator[tuple[str, Table]]:
        """Every sub-table, by name (``[providers.NAME]``)."""
        for name in list(self._data):
            yield name, self.table(name)

    def done(self) -> None:
        """Refuse every key that no getter asked for."""
        for key in self._data:
            if key not in self._read:
                close = difflib.get_close_matches(key, sorted(self._read), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(sorted(self._read)) or "none"
                raise self.error(key, f"unknown key{hint}; known keys here: {known}")
