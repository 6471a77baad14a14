"""Dict lookup against a generated if/elif chain over N provider names.

Both dispatchers are generated as source and compiled once, so they have the
same shape: a module-level function taking the provider name. The chain is
the shape found in real code (``if provider == "name": return handler`` ...);
the dict version is ``return HANDLERS[provider]``. Both raise ``KeyError`` for
an unknown name. A third function that only returns its argument measures the
call itself, which every dispatcher pays.

Lookup keys are built at run time (not interned constants), as a name parsed
out of a user's model string would be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from benchmarks.fresh import Case, Samples, time_cases
from benchmarks.stats import Summary, summarize

SIZES = (5, 10, 25, 47, 100, 250, 500, 1000)
POSITIONS = ("first", "middle", "last")

Dispatch = Callable[[str], object]


def provider_names(n: int) -> list[str]:
    return [f"provider_{i}" for i in range(n)]


def runtime_copy(name: str) -> str:
    """An equal string that is a new object, as a parsed name is."""
    return name.encode().decode()


def ifelif_source(names: Sequence[str]) -> str:
    """``if provider == "a": return handler_0`` / ``elif ...`` / ``raise KeyError``."""
    lines = ["def dispatch(provider):"]
    for i, name in enumerate(names):
        lines.append(f"    {'if' if i == 0 else 'elif'} provider == {name!r}:")
        lines.append(f"        return handler_{i}")
    lines.append("    raise KeyError(provider)")
    return "\n".join(lines) + "\n"


DICT_SOURCE = "def dispatch(provider):\n    return HANDLERS[provider]\n"
CALL_SOURCE = "def dispatch(provider):\n    return provider\n"


def _compiled(source: str, namespace: dict[str, Any], label: str) -> Dispatch:
    exec(compile(source, f"<{label}>", "exec"), namespace)
    dispatch: Dispatch = namespace["dispatch"]
    return dispatch


def ifelif_dispatcher(names: Sequence[str], handlers: Sequence[object]) -> Dispatch:
    namespace = {f"handler_{i}": handler for i, handler in enumerate(handlers)}
    return _compiled(ifelif_source(names), namespace, f"if/elif over {len(names)} names")


def dict_dispatcher(names: Sequence[str], handlers: Sequence[object]) -> Dispatch:
    return _compiled(DICT_SOURCE, {"HANDLERS": dict(zip(names, handlers, strict=True))}, "dict")


def call_baseline() -> Dispatch:
    return _compiled(CALL_SOURCE, {}, "call")


def position_index(position: str, n: int) -> int:
    return {"first": 0, "middle": n // 2, "last": n - 1}[position]


def measure(config: dict[str, Any]) -> Samples:
    """One round: every (N, strategy, position) case."""
    cases: list[Case] = []
    for n in config["sizes"]:
        names = provider_names(n)
        handlers = [object() for _ in names]
        keys = [runtime_copy(name) for name in names]
        strategies = {
            "dict": dict_dispatcher(names, handlers),
            "ifelif": ifelif_dispatcher(names, handlers),
            "call": call_baseline(),
        }
        for strategy, dispatch in strategies.items():
            every = {"_f": dispatch, "_k": keys[0], "_ks": keys}
            cases.append(Case(f"{n}/{strategy}/average", "for k in ks: f(k)", every, n))
            for position in POSITIONS:
                one = every | {"_k": keys[position_index(position, n)]}
                cases.append(Case(f"{n}/{strategy}/{position}", "f(k)", one))
    return time_cases(cases, config)


@attrs.frozen
class LookupRow:
    """Per-lookup nanoseconds at one N."""

    n: int
    dict_avg: Summary
    dict_worst: Summary
    ifelif_avg: Summary
    ifelif_first: Summary
    ifelif_middle: Summary
    ifelif_worst: Summary
    call_avg: Summary
    call_single: Summary

    @property
    def avg_speedup(self) -> float:
        return self.ifelif_avg.median / self.dict_avg.median

    @property
    def worst_speedup(self) -> float:
        return self.ifelif_worst.median / self.dict_worst.median


def rows(samples: Samples, sizes: Sequence[int]) -> list[LookupRow]:
    def get(n: int, case: str) -> Summary:
        return summarize(samples[f"{n}/{case}"])

    return [
        LookupRow(
            n=n,
            dict_avg=get(n, "dict/average"),
            dict_worst=get(n, "dict/last"),
            ifelif_avg=get(n, "ifelif/average"),
            ifelif_first=get(n, "ifelif/first"),
            ifelif_middle=get(n, "ifelif/middle"),
            ifelif_worst=get(n, "ifelif/last"),
            call_avg=get(n, "call/average"),
            call_single=get(n, "call/first"),
        )
        for n in sizes
    ]
