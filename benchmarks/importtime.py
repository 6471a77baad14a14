"""Import time: a fresh interpreter per sample, wall clock, median of several.

``python -c "import pipeline, middlewares, providers"`` next to ``import httpx``
and a bare interpreter (``python -c pass``), run round-robin so a noisy moment
hits all three alike. The cost a user pays is the difference to the bare run.

Bytecode is allowed: an installed package has its ``.pyc`` files, so the
children run without ``PYTHONDONTWRITEBYTECODE`` (which this machine sets, and
which would otherwise make every sample recompile dispatchline's sources);
the untimed warm-up run writes the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks.fresh import ROOT
from benchmarks.stats import Summary, summarize

BARE = "bare interpreter"
HTTPX = "import httpx"
DISPATCHLINE = "import pipeline, middlewares, providers"

SNIPPETS = {
    BARE: "pass",
    HTTPX: "import httpx",
    DISPATCHLINE: "import pipeline, middlewares, providers",
}


_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run_ms(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=_ENV)
    return (time.perf_counter() - start) * 1000


def measure(runs: int, on_run: Callable[[], None] = lambda: None) -> dict[str, Summary]:
    """Milliseconds per snippet; one untimed run of each first warms the file cache."""
    for code in SNIPPETS.values():
        _run_ms(code)
    samples: dict[str, list[float]] = {label: [] for label in SNIPPETS}
    for _ in range(runs):
        for label, code in SNIPPETS.items():
            samples[label].append(_run_ms(code))
        on_run()
    return {label: summarize(values) for label, values in samples.items()}
