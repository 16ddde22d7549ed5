"""The bad-input corpus (tests/pipeline/corpus.py) through real runs: one WebDataset run and
one Parquet run on a local Ray. Every item gets exactly one stats row with a clear message,
good neighbours are restored, nothing is written outside OUT.

Already covered elsewhere (not repeated here): pairs-layout corrupt image, missing mask,
aspect mismatch and empty mask on S3 (test_e2e), modes and exact pixels outside the hole per
stage (test_stages), `..`/absolute tar keys on S3 (test_e2e), key sanitising (test_storage).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pipeline import RestoreConfig, run_restore
from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.pipeline import corpus


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def run_corpus(tmp: Path, files: dict[str, bytes], images: str, **spec) -> dict:
    for rel, blob in files.items():
        path = tmp / "in" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    before = files_under(tmp)
    out = tmp / "out"
    summary = run_restore(
        RestoreConfig.from_dict(
            dict(
                images=str(tmp / "in" / images),
                output=str(out),
                engine="opencv-telea",
                progress_bars=False,
                batch_size=4,
                actors="1",
                max_image_pixels=corpus.MAX_PIXELS,
                **{"output_layout": "files", **spec},
            )
        )
    )
    rows = load_history(str(out), {}, columns=list(STATS_SCHEMA.names)).to_pylist()
    written = files_under(tmp) - before
    return {"summary": summary, "rows": rows, "written": written, "out": out}


@pytest.fixture(scope="module")
def webdataset_run(ray_local, tmp_path_factory):
    files, cases = corpus.webdataset_corpus()
    return cases, run_corpus(tmp_path_factory.mktemp("wds"), files, "shards")


@pytest.fixture(scope="module")
def parquet_run(ray_local, tmp_path_factory):
    files, cases = corpus.parquet_corpus()
    return cases, run_corpus(tmp_path_factory.mktemp("pq"), files, "pq")


def check_rows(cases: list[corpus.Case], result: dict) -> dict[str, dict]:
    """One row per case, with the expected status and message; returns rows by key."""
    rows = result["rows"]
    keys = [r["key"] for r in rows]
    assert sorted(keys) == sorted(c.key for c in cases), "exactly one row per item"
    by_key = {r["key"]: r for r in rows}
    for case in cases:
        row = by_key[case.key]
        assert row["status"] == case.status, (case.name, row["error"])
        for word in case.words:
            assert word in (row["error"] or ""), (case.name, row["error"])
        if case.status == "ok":
            assert row["error"] is None and Path(row["output_uri"]).is_file(), case.name
        else:
            assert row["output_uri"] is None and row["error"], case.name
    counts = result["summary"]["counts"]
    assert result["summary"]["status"] == "finished"
    assert counts["listed"] == len(cases) == counts["ok"] + counts["error"] + counts["skipped"]
    return by_key


def check_only_out_written(result: dict) -> None:
    out = result["out"]
    assert result["written"], "the run wrote nothing"
    outside = [p for p in result["written"] if out not in p.parents]
    assert outside == []
    images = {p for p in result["written"] if (out / "images") in p.parents}
    ok_outputs = {Path(r["output_uri"]) for r in result["rows"] if r["status"] == "ok"}
    assert images == ok_outputs  # an image for each ok row, nothing for the others


def test_webdataset_corpus_one_row_per_item_with_a_reason(webdataset_run):
    cases, result = webdataset_run
    check_rows(cases, result)
    check_only_out_written(result)


def test_webdataset_corpus_outputs_are_what_a_user_expects(webdataset_run):
    cases, result = webdataset_run
    rows = {r["key"].removeprefix("corpus/"): r for r in result["rows"]}
    opened = {k: Image.open(r["output_uri"]) for k, r in rows.items() if r["status"] == "ok"}
    assert opened["wide"].size == (20000, 10)
    assert opened["tiny"].size == (1, 1) and rows["tiny"]["hole_ratio"] == 1.0
    assert rows["mask_full"]["hole_ratio"] == 1.0 and opened["mask_full"].size == corpus.SIZE
    assert (opened["gray16"].mode, opened["gray16"].format) == ("I;16", "PNG")
    assert (opened["cmyk"].mode, opened["cmyk"].format) == ("CMYK", "JPEG")
    assert opened["palette"].mode == "RGBA" and opened["gray"].mode == "L"
    # EXIF orientation: the output shows upright (a JPEG keeps its stored pixels and its tag),
    # and matches the upright original off the hole
    upright = next(c for c in cases if c.key == "corpus/exif").extra["upright"]
    shown = ImageOps.exif_transpose(opened["exif"])
    assert shown.size == (48, 64) == (rows["exif"]["width"], rows["exif"]["height"])
    below_hole = np.asarray(shown, float)[40:]
    right = np.abs(below_hole - np.asarray(upright, float)[40:]).mean()
    upside_down = np.asarray(upright.transpose(Image.Transpose.ROTATE_180), float)[40:]
    assert right < 12 and right * 3 < np.abs(below_hole - upside_down).mean()
    # animated inputs: the first frame (red), written as PNG for GIF
    assert rows["anim_gif"]["output_uri"].endswith("anim_gif.png")
    for name in ("anim_gif", "anim_webp"):
        red, _green, blue = np.asarray(opened[name].convert("RGB"), float)[0, 0]
        assert red > 150 and blue < 80, name
    # masks: scaled when the aspect matches; soft and alpha-only masks as drawn
    assert abs(rows["mask_half"]["hole_pixels"] - 4 * 9 * 8) <= 40
    by_key = {c.key.removeprefix("corpus/"): c for c in cases}
    for name in ("mask_soft", "mask_alpha"):
        assert rows[name]["hole_pixels"] == by_key[name].extra["hole_pixels"], name
    # duplicate keys: two items, two outputs, neither overwrites the other
    assert Path(rows["dup~2"]["output_uri"]).name == "dup~2.png"
    assert not np.array_equal(np.asarray(opened["dup"]), np.asarray(opened["dup~2"]))


def test_parquet_corpus_one_row_per_item_with_a_reason(parquet_run):
    cases, result = parquet_run
    by_key = check_rows(cases, result)
    check_only_out_written(result)
    assert by_key["main/dup"]["image_uri"].endswith("#row=1")
    assert by_key["main/dup~2"]["image_uri"].endswith("#row=2")


def test_a_rerun_of_the_corpus_redoes_nothing(webdataset_run):
    """Disambiguated keys are stable: the ledger finds every item done on a second run."""
    _, result = webdataset_run
    summary = run_restore(
        RestoreConfig.from_dict(
            {**result["summary"]["config"], "run_id": None, "progress_bars": False}
        )
    )
    assert summary["counts"]["already_done"] == summary["counts"]["listed"]
    assert summary["stats_rows"] == 0


def test_the_pixel_limit_is_a_job_option(ray_local, tmp_path):
    """The same 1000x1000 image: an error row under a low `max_image_pixels`, ok above it."""
    shard = corpus.data.tar_shard(
        [
            ("big.png", corpus.bomb_png(1000, 1000)),
            ("big.mask.png", corpus.mask_png((1000, 1000), (10, 10, 20, 20))),
        ]
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "s.tar").write_bytes(shard)
    statuses = []
    for limit in (999_999, 1_000_000):
        summary = run_restore(
            RestoreConfig.from_dict(
                dict(
                    images=str(tmp_path / "in"),
                    output=str(tmp_path / f"out{limit}"),
                    engine="opencv-telea",
                    progress_bars=False,
                    actors="1",
                    max_image_pixels=limit,
                )
            )
        )
        statuses.append({k: v for k, v in summary["counts"].items() if v and k != "listed"})
    assert statuses == [{"error": 1}, {"ok": 1}]
