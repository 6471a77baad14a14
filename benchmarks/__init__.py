"""``python -m benchmarks``: what dict dispatch saves and what the pipeline costs.

``python -m benchmarks`` (about 5 minutes) or ``--quick`` (under a minute, the
CI smoke run) prints the tables, and writes ``results/results.json`` and
``results/benchmarks.png``; ``--json PATH`` writes the JSON there too;
``--record`` also rewrites ``RESULTS.md`` and its plot, for a full run.

Sections, each its own module:

- :mod:`benchmarks.lookup`: a generated if/elif chain over N provider names
  against a dict, per lookup, timed in fresh processes (:mod:`benchmarks.fresh`);
- :mod:`benchmarks.resolve`: the real path (``resolve_target`` plus the
  registry's dict) against an if/elif resolver doing the same job;
- :mod:`benchmarks.overhead`: per-request latency and throughput, raw httpx
  against the pipeline, in-process (:mod:`benchmarks.targets`) and over a
  loopback server (:mod:`benchmarks.server`), httpx's default transport
  against the aiohttp-backed one; :mod:`benchmarks.streaming` for streams;
  :mod:`benchmarks.compare` adds litellm when it is installed;
- :mod:`benchmarks.short_streams`: 5-chunk streams on the client a pipeline makes
  itself against raw aiohttp, sequential and at concurrency 50;
- :mod:`benchmarks.layers`: each middleware's own cost, alone and in place;
- :mod:`benchmarks.breakdown`: one request profiled, by component, beside raw
  aiohttp's (where the time goes);
- :mod:`benchmarks.usage`: what Costs, Stats and Telemetry add per request;
- :mod:`benchmarks.importtime`: what ``import pipeline, middlewares, providers`` costs.

:mod:`benchmarks.analysis` turns the numbers into the verdicts the tables
print (the 24x/47x claim, flatness, transports, and each performance target
met or missed); nothing here asserts a timing, so noise never fails a run.
"""
