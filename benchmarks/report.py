"""The results as tables: one list of sections, rendered by rich or as Markdown."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from rich.console import Console
from rich.table import Table

from benchmarks import analysis, breakdown, routing, shared_state, usage
from benchmarks import gateway as gateway_bench
from benchmarks.importtime import BARE
from benchmarks.overhead import RAW, SESSION
from benchmarks.run import Results
from benchmarks.stats import Summary


@attrs.frozen
class Section:
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    notes: Sequence[str] = ()


def spread(summary: Summary, digits: int = 0) -> str:
    """``median ±half-IQR%``: the middle half of the samples lies within the band."""
    return f"{summary.median:,.{digits}f} ±{summary.spread * 50:.0f}%"


def times(value: float) -> str:
    return f"{value:.1f}x"


def lookup_section(results: Results) -> Section:
    rows = [
        [
            str(row.n),
            spread(row.dict_avg),
            spread(row.ifelif_first),
            spread(row.ifelif_middle),
            spread(row.ifelif_worst),
            spread(row.ifelif_avg),
            times(row.avg_speedup),
            times(row.worst_speedup),
        ]
        for row in results.lookup
    ]
    notes = [analysis.claim_verdict(results.lookup)]
    flat = analysis.lookup_flatness(results.lookup)
    if flat is not None:
        notes.append(f"dict lookup, time(N=1000) / time(N=10) = {flat:.2f} (target: within 1.3).")
    notes.append(
        "Both are generated functions of the same shape; 'worst' is the last name in the "
        "chain. A function that only returns its argument costs "
        f"{results.lookup[0].call_single.median:.0f} ns here: every dispatcher pays that call."
    )
    return Section(
        "Lookup: dict vs generated if/elif chain (ns per lookup, median over fresh processes)",
        [
            "N",
            "dict",
            "if/elif first",
            "if/elif middle",
            "if/elif last",
            "if/elif avg",
            "avg speedup",
            "worst speedup",
        ],
        rows,
        notes,
    )


def resolve_section(results: Results) -> Section:
    rows = [
        [
            str(row.n),
            spread(row.real_avg),
            spread(row.real_last),
            spread(row.ifelif_avg),
            spread(row.ifelif_worst),
            times(row.ifelif_avg.median / row.real_avg.median),
        ]
        for row in results.resolve
    ]
    notes = []
    flat = analysis.resolve_flatness(results.resolve)
    if flat is not None:
        notes.append(f"Real path, time(N=1000) / time(N=10) = {flat:.2f} (target: within 1.3).")
    crossover = analysis.resolve_crossover(results.resolve)
    if crossover is not None:
        notes.append(
            f"The real path is faster than the if/elif resolver from N={crossover} on; below "
            "that, a short chain costs less than resolve_target's checks and registry probe."
        )
    return Section(
        "Real path: resolve_target + registry dict vs an if/elif resolver (ns per call)",
        ["N", "real avg", "real last", "if/elif avg", "if/elif last", "if/elif / real"],
        rows,
        notes,
    )


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.1f}"


def overhead_section(results: Results) -> Section:
    rows = []
    for row in results.overhead:
        raw = analysis.row_for(results.overhead, row.target, RAW)
        over = analysis.overhead_over_raw(results.overhead, row.target, row.variant)
        rows.append(
            [
                row.target,
                row.variant,
                spread(row.latency_us, 1),
                "" if row.variant == RAW else _us(over),
                f"{row.req_per_s:,.0f}",
                f"{row.concurrent_req_per_s:,.0f}",
                f"{row.concurrent_latency_us.median:,.0f}",
                ""
                if raw is None or row.variant == RAW
                else f"{row.concurrent_req_per_s / raw.concurrent_req_per_s:.0%}",
            ]
        )
    notes = [f"Pipeline.default() measured here: {results.default_stack}."]
    for goal in analysis.goals(results)[:2]:
        notes.append(f"{goal.name}: {goal.measured} (target: {goal.limit}): {goal.verdict}.")
    unlogged = analysis.without_logging(results.overhead)
    if unlogged is not None:
        notes.append(unlogged)
    notes.append(
        "`own` is the client a pipeline makes itself (the pipeline variants there are built "
        f"without http_client=), with {SESSION} beside it: the targets compare those two."
    )
    notes.extend(results.skipped)
    return Section(
        "Overhead per request: latency (µs, sequential) and throughput (req/s)",
        [
            "target",
            "variant",
            "latency µs",
            "over raw µs",
            "req/s",
            "req/s @50",
            "latency @50 µs",
            "@50 vs raw",
        ],
        rows,
        notes,
    )


def streaming_section(results: Results) -> Section:
    rows = [
        [row.target, row.variant, spread(row.first_chunk_us, 1), spread(row.total_us, 1)]
        for row in results.streaming
    ]
    return Section(
        "Streaming, 100 chunks: time to first chunk and to the end (µs)",
        ["target", "variant", "first chunk µs", "total µs"],
        rows,
        [
            "The loopback server writes its 100 chunks in one burst; on a small shared machine "
            "the client may not run until the burst is written, so the first chunk over "
            "loopback can wait for the whole burst. The in-process rows show the client alone."
        ],
    )


def goals_section(results: Results) -> Section:
    rows = [
        [goal.name, goal.filed or "-", goal.measured, goal.limit, goal.verdict]
        for goal in analysis.goals(results)
    ]
    return Section(
        "Performance targets: this run against each limit",
        ["target", "when filed", "measured", "limit", "verdict"],
        rows,
        [
            "Medians of one run, variants interleaved; ratios are between rows measured side "
            "by side. The sections below hold every number, each middleware's own cost and the "
            "profile by component.",
            *([unlogged] if (unlogged := analysis.without_logging(results.overhead)) else []),
        ],
    )


def short_streams_section(results: Results) -> Section:
    raw = next((r for r in results.short_streams if r.variant == SESSION), None)
    rows = [
        [
            row.variant,
            spread(row.latency_us, 1),
            ""
            if raw is None or row is raw
            else times(row.latency_us.median / raw.latency_us.median),
            f"{row.concurrent_req_per_s:,.0f}",
            f"{row.concurrent_latency_us.median:,.0f}",
            ""
            if raw is None or row is raw
            else f"{row.concurrent_req_per_s / raw.concurrent_req_per_s:.0%}",
        ]
        for row in results.short_streams
    ]
    return Section(
        "Short streams (5 chunks) over loopback, on the client a pipeline makes itself",
        [
            "variant",
            "whole stream µs",
            "vs aiohttp",
            "streams/s @50",
            "latency @50 µs",
            "@50 vs aiohttp",
        ],
        rows,
        [
            f"{SESSION} reads the same SSE lines and decodes each event with json.loads; "
            "raw httpx streams on the client a pipeline makes itself (through AsyncClient.send)."
        ],
    )


def layers_section(results: Results) -> Section:
    rows = [
        [
            row.layer,
            f"{row.alone_us:+.1f}",
            "-" if row.in_place_us is None else f"{row.in_place_us:+.1f}",
            "-"
            if row.in_place_us is None
            else "left out of Pipeline.default()"
            if row.removed
            else "added to Pipeline.default()",
        ]
        for row in results.layers
    ]
    return Section(
        "Each middleware's own cost (µs per request)",
        ["layer", "alone", "in place", "in place: measured by"],
        rows,
        [
            "Alone: the layer around a terminal that answers at once, minus that terminal "
            "(steady). In place: Pipeline.default() on MockTransport with and without the "
            "layer, interleaved (what it adds among httpx's work; noisier). Logging's cost is "
            "mostly structlog rendering its one JSON event per request; Cache's is the key "
            "(canonical JSON, sha256) and the copy it stores."
        ]
        if rows
        else [],
    )


def breakdown_section(results: Results) -> Section:
    variants = list(dict.fromkeys(row.variant for row in results.breakdown))
    cells = {(row.variant, row.component): row for row in results.breakdown}
    components = list(dict.fromkeys(row.component for row in results.breakdown))
    rows = []
    for where in components:
        line = [where]
        for variant in variants:
            row = cells.get((variant, where))
            line.append(
                "" if row is None else f"{row.us_per_request:,.1f} ({row.calls_per_request:,.0f})"
            )
        rows.append(line)
    totals = ["total"]
    for variant in variants:
        mine = [row for row in results.breakdown if row.variant == variant]
        us = sum(row.us_per_request for row in mine)
        calls = sum(row.calls_per_request for row in mine)
        totals.append(f"{us:,.1f} ({calls:,.0f})")
    if rows:
        rows.append(totals)
    return Section(
        "Where the time goes: profiled µs per request (Python calls per request), by component",
        ["component", *variants],
        rows,
        [breakdown.NOTE] if rows else [],
    )


def transport_section(results: Results) -> Section:
    rows = [
        [
            row.label,
            f"{row.raw_req_per_s:,.0f}",
            f"{row.pipeline_req_per_s:,.0f}",
            f"{row.fraction:.0%}",
        ]
        for row in analysis.transports(results.overhead)
    ]
    return Section(
        "Transports over loopback at concurrency 50 (req/s)",
        ["transport", "raw httpx", "Pipeline.default()", "pipeline / raw"],
        rows,
        [analysis.transport_verdict(results.overhead)],
    )


def import_section(results: Results) -> Section:
    bare = results.import_ms[BARE].median
    rows = [
        [label, spread(summary, 1), "" if label == BARE else f"{summary.median - bare:+.1f}"]
        for label, summary in results.import_ms.items()
    ]
    above = analysis.import_ms(results)["dispatchline_above_bare"]
    return Section(
        "Import time, fresh interpreter (ms, median ±half-IQR)",
        ["command", "ms", "above bare"],
        rows,
        [
            f"import pipeline, middlewares, providers: {above:.0f} ms above a bare interpreter "
            "(target: under 150)."
        ],
    )


def usage_section(results: Results) -> Section:
    rows = [
        [
            row.variant,
            spread(row.latency_us, 1),
            "" if row.variant == usage.DEFAULT else _us(row.over_default_us),
            _us(row.alone_us),
        ]
        for row in results.usage
    ]
    verdict = usage.verdict(results.usage)
    return Section(
        f"Usage layers over Pipeline.default() on MockTransport, priced {usage.MODEL} (µs)",
        ["variant", "latency µs", "over default µs", "timed alone µs"],
        rows,
        [verdict] if verdict else [],
    )


def sections(results: Results) -> list[Section]:
    return [
        goals_section(results),
        lookup_section(results),
        resolve_section(results),
        overhead_section(results),
        transport_section(results),
        short_streams_section(results),
        streaming_section(results),
        layers_section(results),
        breakdown_section(results),
        usage_section(results),
        *([Section(*routing.table(results.routing))] if results.routing else []),
        *([Section(*shared_state.table(results.shared_state))] if results.shared_state else []),
        import_section(results),
        gateway_bench.section(results.gateway, results.gateway_skipped),
    ]


def print_sections(console: Console, parts: Sequence[Section]) -> None:
    for part in parts:
        table = Table(title=part.title, title_justify="left")
        for i, column in enumerate(part.columns):
            table.add_column(
                column, justify="left" if i == 0 or column in ("target", "variant") else "right"
            )
        for row in part.rows:
            table.add_row(*row)
        console.print(table)
        for note in part.notes:
            console.print(f"  • {note}", highlight=False)
        console.print()


def markdown(parts: Sequence[Section]) -> str:
    out: list[str] = []
    for part in parts:
        out += [f"### {part.title}", "", "| " + " | ".join(part.columns) + " |"]
        out.append(
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(part.columns))) + "|"
        )
        out += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in part.rows
        ]
        out.append("")
        out += [f"- {note}" for note in part.notes]
        out.append("")
    return "\n".join(out)
