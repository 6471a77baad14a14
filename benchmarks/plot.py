"""The PNG: lookup cost against N (log-x), and the overhead bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from benchmarks.overhead import DEFAULT, RAW
from benchmarks.run import Results

BAR_VARIANTS = (RAW, "Pipeline([])", DEFAULT, "cache hit")
BAR_TARGETS = ("mock", "httpx", "aiohttp")


def write_plot(results: Results, path: Path) -> None:
    figure, (lookup, latency, throughput) = plt.subplots(1, 3, figsize=(15, 4.2), dpi=72)

    sizes = [row.n for row in results.lookup]
    lookup.plot(sizes, [r.dict_avg.median for r in results.lookup], "o-", label="dict")
    lookup.plot(
        sizes, [r.ifelif_avg.median for r in results.lookup], "s-", label="if/elif, average"
    )
    lookup.plot(
        sizes, [r.ifelif_worst.median for r in results.lookup], "s--", label="if/elif, last name"
    )
    resolve_sizes = [row.n for row in results.resolve]
    lookup.plot(
        resolve_sizes,
        [r.real_avg.median for r in results.resolve],
        "^-",
        label="real path (resolve + dict)",
    )
    lookup.plot(
        resolve_sizes,
        [r.ifelif_avg.median for r in results.resolve],
        "v:",
        label="if/elif resolver",
    )
    lookup.set(
        xscale="log",
        yscale="log",
        xlabel="providers (N)",
        ylabel="ns per lookup",
        title="Lookup cost vs number of providers",
    )
    lookup.legend(fontsize=8)
    lookup.grid(True, which="both", alpha=0.3)

    measured = {row.variant for row in results.overhead}
    variants = [variant for variant in BAR_VARIANTS if variant in measured]
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        rows = {r.target: r for r in results.overhead if r.variant == variant}
        xs = [t + (i - (len(variants) - 1) / 2) * width for t in range(len(BAR_TARGETS))]
        latency.bar(
            xs,
            [rows[t].latency_us.median if t in rows else 0 for t in BAR_TARGETS],
            width,
            label=variant,
        )
        throughput.bar(
            xs,
            [rows[t].concurrent_req_per_s if t in rows else 0 for t in BAR_TARGETS],
            width,
            label=variant,
        )
    for axes, label, title in (
        (latency, "µs per request (median)", "Latency, one at a time"),
        (throughput, "requests per second", "Throughput at concurrency 50"),
    ):
        axes.set_xticks(range(len(BAR_TARGETS)), BAR_TARGETS)
        axes.set(ylabel=label, title=title)
        axes.legend(fontsize=8)
        axes.grid(True, axis="y", alpha=0.3)

    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
