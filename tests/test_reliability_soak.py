"""The soak (``python -m benchmarks soak``): a tiny run end to end, its checks, and its section
of RESULTS.md, which the main benchmark's ``--record`` keeps."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import benchmarks.soak as soak
from benchmarks.__main__ import main as cli
from benchmarks.record import write_record
from benchmarks.soak_report import BEGIN, END, Run, kept_section, record_runs
from tests.test_benchmarks import empty_results

TINY = soak.Scale("quick", (("asyncio", 80, 20), ("trio", 40, 10)), rounds=2)


def test_a_tiny_soak_runs_on_both_backends_and_every_check_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs: list[Run] = []
    monkeypatch.setattr(soak, "QUICK", TINY)
    monkeypatch.setattr(soak, "TIMEOUT", 0.3)  # the server's hangs cost less
    monkeypatch.setattr(soak, "print_runs", lambda found, *args: runs.extend(found))
    code = cli(["soak", "--quick", "--seed", "3"])
    assert [run.backend for run in runs] == ["asyncio", "trio"]
    for run in runs:
        assert sum(run.outcomes.values()) == run.requests
        assert run.outcomes[("plain", "ok")] > 0 and run.outcomes[("stream", "ok")] > 0
        assert run.memory and run.seconds > 0
        assert run.violations() == []
    assert code == 0


def test_a_run_names_each_violation() -> None:
    run = Run(backend="asyncio", requests=10, concurrency=2, growth_limit=100)
    assert run.violations() == []
    run.untyped["KeyError: 'x'"] += 1
    run.outlived = 1
    run.callback_violations = 2
    run.tainted["no-end-marker (stream call)"] += 1
    run.open_sockets = 1
    run.stray_tasks = 1
    run.memory = [1000, 1101]
    assert len(run.violations()) == 7


def test_the_soak_section_is_replaced_by_the_soak_and_kept_by_the_benchmarks(
    tmp_path: Path,
) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nold tables\n", encoding="utf-8")
    outcomes = Counter({("plain", "ok"): 10})
    run = Run(backend="asyncio", requests=10, concurrency=2, outcomes=outcomes)
    record_runs([run], seed=1, path=results)
    record_runs([run], seed=2, path=results)  # replaced, not appended twice
    text = results.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and "seed 2" in text
    assert text.startswith("# Benchmark results\n\nold tables\n")
    section = kept_section(results)
    assert section.startswith(BEGIN) and "| ok | 10 | 0 |" in section
    assert kept_section(tmp_path / "missing.md") == ""


def test_recording_the_benchmarks_keeps_the_soak_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# old\n", encoding="utf-8")
    run = Run(backend="trio", requests=1, concurrency=1, outcomes=Counter({("plain", "ok"): 1}))
    record_runs([run], seed=5, path=results)
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"\x89PNG")
    empty = empty_results(scale="full", machine={"cores": "2"}, seconds=60.0)
    write_record(empty, [], plot, folder=tmp_path)
    text = results.read_text(encoding="utf-8")
    assert "# old" not in text and text.startswith("# Benchmark results")
    assert kept_section(results) == kept_section(results) != ""
    assert "seed 5" in text
