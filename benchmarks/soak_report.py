"""The soak's figures: what one run counted, its violations, the printed report and RESULTS.md.

``RESULTS.md`` is rewritten by ``python -m benchmarks --record``; the soak's
section lives between two markers there, which that rewrite keeps
(:func:`kept_section`) and ``python -m benchmarks soak --record`` replaces.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import attrs
from rich.console import Console
from rich.table import Table

from benchmarks.machine import describe

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN = "<!-- soak: written by `python -m benchmarks soak --record` -->"
END = "<!-- /soak -->"


@attrs.define
class Run:
    """What one backend's run counted."""

    backend: str
    requests: int
    concurrency: int
    outcomes: Counter[tuple[str, str]] = attrs.field(factory=Counter)  # (kind, outcome)
    untyped: Counter[str] = attrs.field(factory=Counter)
    tainted: Counter[str] = attrs.field(factory=Counter)
    outlived: int = 0
    longest_wait: float = 0.0
    longest_lag: float = 0.0  # the event loop's longest stall while the run went on
    callback_violations: int = 0
    open_sockets: int = 0
    stray_tasks: int = 0
    memory: list[int] = attrs.field(factory=list)  # live traced bytes after each measured round
    growth_limit: int = 0
    rss_growth: int = 0
    seconds: float = 0.0

    @property
    def growth(self) -> int:
        return self.memory[-1] - self.memory[0] if len(self.memory) > 1 else 0

    def checks(self) -> list[tuple[str, str, bool]]:
        """(what, figure, holds) for every check."""
        memory = " -> ".join(f"{m / 1024:,.0f}" for m in self.memory)
        return [
            ("untyped exceptions", str(sum(self.untyped.values())), not self.untyped),
            (
                "calls that outlived their timeout=",
                f"{self.outlived} (longest wait {self.longest_wait:.2f} s; "
                f"longest loop stall {self.longest_lag:.2f} s)",
                self.outlived == 0,
            ),
            ("callback violations", str(self.callback_violations), self.callback_violations == 0),
            (
                "truncated or malformed answers reported as success",
                _counts(self.tainted),
                not self.tainted,
            ),
            ("open connections after aclose", str(self.open_sockets), self.open_sockets == 0),
            ("stray tasks after aclose", str(self.stray_tasks), self.stray_tasks == 0),
            (
                "live allocations after each round (KiB)",
                f"{memory}: {self.growth / 1024:+,.0f} KiB (limit {self.growth_limit / 1024:,.0f})",
                self.growth <= self.growth_limit,
            ),
        ]

    def violations(self) -> list[str]:
        return [what for what, _, holds in self.checks() if not holds]


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counter.most_common()) or "0"


def _outcomes(run: Run) -> list[tuple[str, int, int]]:
    names = sorted({outcome for _, outcome in run.outcomes}, key=lambda o: (o != "ok", o))
    return [(o, run.outcomes[("plain", o)], run.outcomes[("stream", o)]) for o in names]


def _summary(run: Run) -> str:
    rate = run.requests / run.seconds if run.seconds else 0.0
    return (
        f"{run.backend}: {run.requests:,} requests at concurrency {run.concurrency} in "
        f"{run.seconds:.1f} s ({rate:,.0f} req/s, tracemalloc on after the first round); "
        f"RSS {run.rss_growth / 2**20:+.1f} MiB"
    )


def print_runs(runs: Sequence[Run], scale: str, seed: int) -> None:
    console = Console(width=150) if not Console().is_terminal else Console()
    console.print(f"[bold]Soak ({scale} run, seed {seed})[/bold]")
    for run in runs:
        console.print(_summary(run))
        outcomes = Table("outcome", "plain", "streamed", title=f"{run.backend}: outcomes")
        for name, plain, stream in _outcomes(run):
            outcomes.add_row(name, f"{plain:,}", f"{stream:,}")
        console.print(outcomes)
        checks = Table("check", "figure", "", title=f"{run.backend}: checks")
        for what, figure, holds in run.checks():
            checks.add_row(what, figure, "ok" if holds else "[red]VIOLATION[/red]")
        console.print(checks)
        for example, count in run.untyped.most_common(5):
            console.print(f"  untyped x{count}: {example}")
    bad = [f"{run.backend}: {v}" for run in runs for v in run.violations()]
    console.print("[red]violations: " + "; ".join(bad) + "[/red]" if bad else "no violations")


def section(runs: Sequence[Run], seed: int) -> str:
    lines = [
        BEGIN,
        "## Soak: fault injection (`python -m benchmarks soak`)",
        "",
        f"The last full soak ({time.strftime('%Y-%m-%d')}, seed {seed}, "
        f"{describe()['cores']} cores, shared): every request through the default stack with "
        "a fallback provider, against a loopback server injecting a fault into about two "
        "requests in five (see `benchmarks/soak.py`).",
        "",
    ]
    for run in runs:
        lines += [f"### {run.backend}", "", _summary(run), ""]
        lines += ["| outcome | plain | streamed |", "|---|---:|---:|"]
        lines += [f"| {name} | {p:,} | {s:,} |" for name, p, s in _outcomes(run)]
        lines += ["", "| check | figure | |", "|---|---|---|"]
        lines += [
            f"| {what} | {figure} | {'ok' if holds else '**violation**'} |"
            for what, figure, holds in run.checks()
        ]
        lines.append("")
    return "\n".join([*lines, END]) + "\n"


def kept_section(path: Path = RESULTS) -> str:
    """The soak's section of ``path`` as it stands ("" when there is none)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    begin, end = text.find(BEGIN), text.find(END)
    return text[begin : end + len(END)] + "\n" if 0 <= begin < end else ""


def record_runs(runs: Sequence[Run], seed: int, path: Path = RESULTS) -> None:
    """Replace (or append) the soak's section of RESULTS.md."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    old = kept_section(path)
    new = section(runs, seed)
    text = text.replace(old, new) if old else text.rstrip("\n") + "\n\n" + new
    path.write_text(text, encoding="utf-8")
