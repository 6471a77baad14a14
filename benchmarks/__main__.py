"""``python -m benchmarks [--quick] [--json PATH] [--results DIR] [--record]``;
``python -m benchmarks soak [--quick] [--record] [--seed N]`` (:mod:`benchmarks.soak`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from benchmarks.export import to_json
from benchmarks.plot import write_plot
from benchmarks.record import HERE, write_record
from benchmarks.report import print_sections, sections
from benchmarks.run import FULL, QUICK, run, steps


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Dict dispatch vs if/elif, pipeline overhead vs raw httpx, import time.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run, well under a minute (what CI runs)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")
    parser.add_argument(
        "--results",
        type=Path,
        default=HERE / "results",
        metavar="DIR",
        help="where results.json and benchmarks.png go (default: benchmarks/results)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="also rewrite benchmarks/RESULTS.md and its plot (full runs only)",
    )
    args = parser.parse_args(argv)
    if args.record and args.quick:
        parser.error("--record keeps full runs only; drop --quick")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["soak"]:
        from benchmarks.soak import main as soak

        return soak(argv[1:])
    args = parse(argv)
    scale = QUICK if args.quick else FULL
    console = Console()
    if not console.is_terminal:  # CI logs: wide enough for the tables, not 80 columns
        console = Console(width=150)
    columns = (
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{scale.name} run", total=steps(scale))
        results = run(scale, lambda done: progress.update(task, advance=1, description=done))

    parts = sections(results)
    print_sections(console, parts)

    args.results.mkdir(parents=True, exist_ok=True)
    data = json.dumps(to_json(results), indent=2) + "\n"
    (args.results / "results.json").write_text(data, encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(data, encoding="utf-8")
    plot = args.results / "benchmarks.png"
    write_plot(results, plot)
    written = [args.results / "results.json", plot, *([args.json] if args.json else [])]
    if args.record:
        written.append(write_record(results, parts, plot))
    console.print(
        f"{scale.name} run took {results.seconds:.0f} s; wrote " + ", ".join(map(str, written))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
