"""benchmarks/service.py on a small configuration (2,000 trials and a 300-trial results-UI
experiment): every part of it runs against today's storage, analysis and service code, so a
changed signature or a broken endpoint fails here rather than when someone next measures."""

from __future__ import annotations

from pathlib import Path

from benchmarks import service as bench

ANSWERS = ("best-config", "best-lambda", "recommendation", "compare")


def test_the_service_benchmark_runs_every_part(db_url: str, tmp_path: Path, capsys) -> None:
    args = bench.parser().parse_args(
        ["--experiments", "4", "--trials", "500", "--big-trials", "300", "--chunk", "1000",
         "--requests", "16", "--concurrency", "2", "--page-requests", "3",
         "--importance-filters", "2"]
    )  # fmt: skip
    figures = bench.run(args, tmp_path, db_url)
    bench.print_figures(figures, db_url.split(":")[0])

    ingest = figures["ingest"]
    assert ingest["trials"] == 2000 and figures["stored"] == 2300
    assert ingest["first_rate"] > 0 and ingest["last_rate"] > 0
    storage = figures["storage"]
    assert storage["bytes_per_trial"] > 0 and storage["columns"]["intermediate"] > 0
    assert set(figures["in_process"]) == set(ANSWERS)
    http = figures["http"]
    for name in ANSWERS:
        assert http[name]["n"] == 16, name
    assert http["home page"]["n"] == http["model page"]["n"] == 3
    assert http["trials.csv"]["bytes"] > 2300 * 20  # one line per trial at least
    assert figures["compute"]["csv"]["bytes"] > 0 and figures["compute"]["report"]["bytes"] > 0
    out = capsys.readouterr().out
    assert "ingest: 2,000 trials" in out and "bytes/trial" in out
