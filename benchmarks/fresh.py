"""Micro-timing with :mod:`timeit`, repeated in fresh interpreter processes.

One process can be lucky or unlucky (hash seed, memory layout, a noisy
neighbour), so every round of a micro benchmark runs in a new interpreter
(``python -m benchmarks.worker``). Each round gives one number per case, the
fastest of its repeats; the reported figure is the median over rounds, and
the spread is between rounds. Rounds run one after another, never in
parallel, so they do not compete for the CPU.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import timeit
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parent.parent

Samples = dict[str, list[float]]


@attrs.frozen
class Case:
    """One thing to time: ``stmt`` runs ``calls`` calls, with ``namespace``'s
    ``_f``, ``_k`` and ``_ks`` bound to the fast locals ``f``, ``k`` and ``ks``."""

    label: str
    stmt: str
    namespace: Mapping[str, Any]
    calls: int = 1


def best_per_call_ns(case: Case, *, repeats: int, min_seconds: float) -> float:
    """Nanoseconds per call in the fastest of ``repeats`` timings.

    The loop count is calibrated (doubling) until one timing takes at least
    ``min_seconds``. Within one process the fastest timing is the one least
    disturbed by everything else on the machine (noise only ever adds); the
    spread that matters is the one between processes, which the caller pools.
    """
    timer = timeit.Timer(case.stmt, "f = _f; k = _k; ks = _ks", globals=dict(case.namespace))
    number = 1
    while timer.timeit(number) < min_seconds and number < 1 << 30:
        number *= 2
    return min(timer.repeat(repeats, number)) / number / case.calls * 1e9


def time_cases(cases: list[Case], config: Mapping[str, Any]) -> Samples:
    """One round: every case once, in a random order, so drift hits no case alone."""
    order = random.sample(cases, len(cases))
    return {
        case.label: [
            best_per_call_ns(case, repeats=config["repeats"], min_seconds=config["min_seconds"])
        ]
        for case in order
    }


def run_rounds(
    section: str,
    config: Mapping[str, Any],
    rounds: int,
    on_round: Callable[[], None] = lambda: None,
) -> Samples:
    """Run ``section``'s measurement in ``rounds`` fresh processes and pool the samples."""
    pooled: Samples = {}
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", section, json.dumps(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"benchmark worker {section!r} failed:\n{done.stderr}")
        for case, samples in json.loads(done.stdout).items():
            pooled.setdefault(case, []).extend(samples)
        on_round()
    return pooled
