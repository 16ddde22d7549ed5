"""Stats compaction: many small files become one, nothing is lost or doubled even when a
compaction is interrupted, and a run holding OUT keeps `spl compact` out."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
from click.testing import CliRunner

from jobs.compact import compact as compact_command
from pipeline.compact import compact
from pipeline.lease import Lease
from pipeline.ledger import PREFIX, load_history, stats_files
from pipeline.schema import STATS_SCHEMA, table
from pipeline.stats import StatsSink


def write_runs(out: str, runs: int = 5, rows: int = 3) -> None:
    for r in range(runs):
        sink = StatsSink(out, f"run{r}", {}, flush_rows=1)
        for i in range(rows):
            sink.add(
                table([{"run_id": f"run{r}", "key": f"k{r}-{i}", "status": "ok"}], STATS_SCHEMA)
            )
        sink.flush()


def keys(out: str) -> list[str]:
    return sorted(load_history(out, {})["key"].to_pylist())


def test_compaction_merges_every_file_into_one_and_keeps_every_row(tmp_path):
    out = str(tmp_path / "out")
    write_runs(out)
    before = keys(out)
    assert len(stats_files(out, {})) == 15 and len(before) == 15
    result = compact(out, {})
    files = stats_files(out, {})
    assert (
        result["compacted"] == 15 and len(files) == 1 and files[0].split("/")[-1].startswith(PREFIX)
    )
    assert keys(out) == before
    assert compact(out, {})["file"] is None  # one file: nothing to do


def test_an_interrupted_compaction_leaves_no_duplicate_rows(tmp_path, monkeypatch):
    import pipeline.compact as module

    out = str(tmp_path / "out")
    write_runs(out)
    before = keys(out)
    monkeypatch.setattr(module, "_delete", lambda *args: None)  # killed after its write
    compact(out, {})
    monkeypatch.undo()
    assert len(list((tmp_path / "out" / "stats").glob("*.parquet"))) == 16
    assert keys(out) == before  # readers skip what the compacted file replaces
    write_runs(out, runs=1)
    compact(out, {})  # the next compaction deletes the leftovers
    assert len(list((tmp_path / "out" / "stats").glob("*.parquet"))) == 1
    assert len(keys(out)) == 18


def test_a_run_holding_out_keeps_spl_compact_out(tmp_path):
    out = str(tmp_path / "out")
    write_runs(out, runs=2)
    with Lease(out, {}, run_id="nightly"):
        result = CliRunner().invoke(compact_command, [out])
        assert result.exit_code == 1 and "in use by run nightly" in result.output
    result = CliRunner().invoke(compact_command, [out])
    assert result.exit_code == 0 and "6 rows" in result.output
    assert re.search(r"compact: reading: (\d+)/\1 files \(100%\)", result.output)  # progress
    assert pq.read_table(stats_files(out, {})[0]).num_rows == 6
