"""The results as JSON: what ``--json PATH`` and ``results/results.json`` hold."""

from __future__ import annotations

from typing import Any

import attrs

from benchmarks import analysis, routing, shared_state
from benchmarks import gateway as gateway_bench
from benchmarks.run import Results
from benchmarks.stats import Summary


def _band(summary: Summary) -> dict[str, float]:
    return {"median": summary.median, "p25": summary.p25, "p75": summary.p75}


def to_json(results: Results) -> dict[str, Any]:
    """Plain numbers under the documented keys; the full spread beside them."""
    measured = analysis.claim_check(results.lookup)
    return {
        "scale": results.scale,
        "rounds": results.rounds,
        "seconds": results.seconds,
        "machine": results.machine,
        "default_stack": results.default_stack,
        "lookup": [
            {
                "n": row.n,
                "dict_ns": row.dict_avg.median,
                "dict_worst_ns": row.dict_worst.median,
                "ifelif_avg_ns": row.ifelif_avg.median,
                "ifelif_first_ns": row.ifelif_first.median,
                "ifelif_middle_ns": row.ifelif_middle.median,
                "ifelif_worst_ns": row.ifelif_worst.median,
                "call_ns": row.call_single.median,
                "avg_speedup": row.avg_speedup,
                "worst_speedup": row.worst_speedup,
                "spread": {"dict": _band(row.dict_avg), "ifelif_avg": _band(row.ifelif_avg)},
            }
            for row in results.lookup
        ],
        "claim": {
            "n": analysis.CLAIM_N,
            "claimed_avg_speedup": analysis.CLAIMED_AVG,
            "claimed_worst_speedup": analysis.CLAIMED_WORST,
            "measured_avg_speedup": measured[0] if measured else None,
            "measured_worst_speedup": measured[1] if measured else None,
            "verdict": analysis.claim_verdict(results.lookup),
        },
        "resolve": [
            {
                "n": row.n,
                "ns": row.real_avg.median,
                "worst_ns": row.real_last.median,
                "ifelif_ns": row.ifelif_avg.median,
                "ifelif_worst_ns": row.ifelif_worst.median,
            }
            for row in results.resolve
        ],
        "flatness": {
            "dict_1000_over_10": analysis.lookup_flatness(results.lookup),
            "resolve_1000_over_10": analysis.resolve_flatness(results.resolve),
        },
        "overhead": [
            {
                "target": row.target,
                "variant": row.variant,
                "median_us": row.latency_us.median,
                "p25_us": row.latency_us.p25,
                "p75_us": row.latency_us.p75,
                "over_raw_us": analysis.overhead_over_raw(
                    results.overhead, row.target, row.variant
                ),
                "req_per_s": row.req_per_s,
                "concurrent_req_per_s": row.concurrent_req_per_s,
                "concurrent_median_us": row.concurrent_latency_us.median,
            }
            for row in results.overhead
        ],
        "transports": [
            {
                "target": row.target,
                "transport": row.label,
                "raw_req_per_s": row.raw_req_per_s,
                "pipeline_req_per_s": row.pipeline_req_per_s,
                "pipeline_fraction": row.fraction,
            }
            for row in analysis.transports(results.overhead)
        ],
        "transport_verdict": analysis.transport_verdict(results.overhead),
        "streaming": [
            {
                "target": row.target,
                "variant": row.variant,
                "first_chunk_us": row.first_chunk_us.median,
                "total_us": row.total_us.median,
            }
            for row in results.streaming
        ],
        "usage": [
            {
                "variant": row.variant,
                "median_us": row.latency_us.median,
                "over_default_us": row.over_default_us,
                "alone_us": row.alone_us,
            }
            for row in results.usage
        ],
        "goals": [
            {
                "name": goal.name,
                "measured": goal.measured,
                "limit": goal.limit,
                "verdict": goal.verdict,
                "filed": goal.filed,
            }
            for goal in analysis.goals(results)
        ],
        "short_streams": [
            {
                "variant": row.variant,
                "median_us": row.latency_us.median,
                "req_per_s": row.req_per_s,
                "concurrent_req_per_s": row.concurrent_req_per_s,
                "concurrent_median_us": row.concurrent_latency_us.median,
            }
            for row in results.short_streams
        ],
        "layers": [attrs.asdict(row) for row in results.layers],
        "breakdown": [attrs.asdict(row) for row in results.breakdown],
        "import_ms": analysis.import_ms(results),
        "gateway": [attrs.asdict(row) for row in results.gateway],
        "gateway_added_p50_us": gateway_bench.added_p50_us(results.gateway),
        "routing": routing.to_json(results.routing) if results.routing else None,
        "shared_state": results.shared_state and shared_state.to_json(results.shared_state),
        "skipped": results.skipped,
    }
