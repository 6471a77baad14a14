"""``benchmarks/RESULTS.md``: the last full run's tables, its plot and its machine."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.report import Section, markdown
from benchmarks.run import Results
from benchmarks.soak_report import kept_section

HERE = Path(__file__).resolve().parent
PLOT_NAME = "lookup.png"


def results_markdown(results: Results, parts: Sequence[Section]) -> str:
    machine = "\n".join(f"| {key} | {value} |" for key, value in results.machine.items())
    return f"""# Benchmark results

The last full run of `python -m benchmarks --record` ({time.strftime("%Y-%m-%d")}, took
{results.seconds / 60:.1f} minutes). Re-run it to replace this file; `--quick` never does.
How the numbers are taken is described in `benchmarks/__init__.py` and each
section's module. Medians throughout; "±N%" is half the interquartile range
relative to the median (the middle half of the samples lies within it). The
lookup and real-path numbers come from {results.rounds} fresh processes, each
contributing the fastest of its timings; their spread is between processes.

## Machine

| | |
|---|---|
{machine}

The machine was shared with other work while this ran: read ratios between
rows of one run, not absolute numbers across runs.

![lookup cost vs N, overhead bars]({PLOT_NAME})

{markdown(parts)}"""


def write_record(
    results: Results, parts: Sequence[Section], plot: Path, folder: Path = HERE
) -> Path:
    """Write RESULTS.md and copy the plot beside it; returns the Markdown file's path."""
    shutil.copyfile(plot, folder / PLOT_NAME)
    path = folder / "RESULTS.md"
    soak = kept_section(path)  # the soak records its own section; keep it
    path.write_text(results_markdown(results, parts) + (f"\n{soak}" if soak else ""), "utf-8")
    return path
