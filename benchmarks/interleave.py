"""Run several variants in alternation, so a noisy moment lands on all of them alike.

Measuring variant A for ten seconds and then variant B for ten seconds on a
shared machine compares A's neighbours with B's. Each round here runs every
variant once, in a new random order, and the rounds are added up.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

S = TypeVar("S")
R = TypeVar("R")


async def interleaved(
    subjects: Mapping[str, S], rounds: int, run: Callable[[S], Awaitable[R]]
) -> dict[str, list[R]]:
    """``{name: [result of each round]}`` with ``run`` called once per subject per round."""
    results: dict[str, list[R]] = {name: [] for name in subjects}
    for _ in range(rounds):
        for name in random.sample(list(subjects), len(subjects)):
            results[name].append(await run(subjects[name]))
    return results
