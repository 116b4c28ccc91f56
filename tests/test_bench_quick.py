"""The benchmarks' smoke tests: `python -m bench --quick` runs every part to the end, losing
nothing, and `python -m bench.paced_share` measures each of its ways.

It asserts that the runs completed and that no event was lost or arrived out of order, never a
speed: CI machines differ too much for that. The load client needs Node.js; without it the test
fails with a message saying so, everywhere: it never skips, since a skip in CI would hide that the
benchmark no longer runs, and telling CI apart by an environment variable is not reliable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_module(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m <args>` in the checkout, its output kept, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(150)
def test_quick_benchmark_completes_without_loss(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.fail("the benchmark's load client needs Node.js 20: install it (`node` on PATH)")
    results = tmp_path / "results.json"
    completed = run_module("bench", "--quick", "--json", str(results), timeout=120)
    output = completed.stdout + completed.stderr
    report = json.loads(results.read_text())
    assert report["errors"] == [], output
    assert report["lost"] == 0, output
    assert completed.returncode == 0, output
    for run in report["fanout"]:
        for server in ("taskcast", "ceiling"):
            tally = run[server]
            assert tally["runs"] > 0
            assert tally["delivered"] == tally["expected"] > 0, run
            assert tally["gaps"] == 0, run
    assert {(run["kind"], run["subs"]) for run in report["latency"]} == {
        ("async", 1), ("async", 50), ("process", 1), ("process", 50)
    }  # fmt: skip
    assert set(report["start"]) == set(report["tasks"]) == {"async", "process"}
    assert report["idle"]["taskcast"]["perSubKiB"] > 0
    assert len(report["history"]["samples"]) > 2
    (streams,) = report["streams"]
    assert streams["received"] == streams["expected"] > 0 and streams["gaps"] == 0, streams
    assert streams["driver"]["tickedOut"] == streams["count"]
    assert streams["driver"]["sampleFailed"] == 0
    assert streams["windows"] and streams["healthMs"]["count"] > 0
    assert streams["healthPhases"]["live"]["count"] > 0
    assert streams["unclosed"] == 0  # the server closed every socket after its `stop`
    assert streams["stopMs"]["count"] == streams["count"]  # every stream's `stop` was timed


@pytest.mark.timeout(120)
def test_paced_share_measures_every_way_and_the_stores_writer() -> None:
    completed = run_module("bench.paced_share", "--rounds", "1", "--seconds", "0.3", timeout=100)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    rows = {
        cells[0]: [float(cell.rstrip("x")) for cell in cells[1:]]
        for line in completed.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| way")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert list(rows) == ["ceiling", "hub", "events", "stored"], output
    assert all(row[0] > 0 for row in rows.values()), output  # the publishing thread ran
    assert rows["ceiling"][1] == 0, output  # no other thread without a store
    assert rows["ceiling"][4] == 0, output  # ... and none that woke
    assert rows["stored"][1] > 0, output  # the store's writer thread committed
    assert rows["stored"][4] > 0, output  # ... woken to do it


def test_paced_share_refuses_no_rounds_with_a_message() -> None:
    completed = run_module("bench.paced_share", "--rounds", "0", timeout=60)
    assert completed.returncode == 2
    assert "--rounds must be at least 1" in completed.stderr
