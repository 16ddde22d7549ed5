"""A hostile archive: keys that try to escape OUT, a decompression bomb under the default
pixel limit, and credentials that must never show up in anything a run leaves behind.

Covered elsewhere (not repeated): checkpoints never unpickle code
(tests/spl_model/test_checkpoint.py::test_a_malicious_pickle_is_refused_without_running_it),
the run summary's redacted config (test_e2e, test_config), `spl restore --dry-run` and
`spl submit` never printing credentials (tests/jobs).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from pipeline import RestoreConfig, run_restore
from pipeline.config import PILLOW_DEFAULT_MAX_PIXELS
from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.conftest import clean_env
from tests.pipeline import corpus, data

REPO = Path(__file__).resolve().parents[2]
HOSTILE_KEYS = [
    "../../escape",
    "/abs/path",
    "a/../../b",
    "C:\\win\\system32\\x",
    "..\\..\\windows",
    "nul\x00byte/../../x",
    "line\nbreak",
    "~/.ssh/authorized_keys",
    "./././..",
    "%2e%2e/%2e%2e/encoded",
    "k" * 2000,
    "/" + "/".join([".."] * 40) + "/tmp/deep",
]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def restore_local(tmp: Path, images: str, **spec) -> tuple[dict, list[dict], set[Path]]:
    before = files_under(tmp)
    summary = run_restore(
        RestoreConfig.from_dict(
            dict(
                images=str(tmp / images),
                output=str(tmp / "out"),
                engine="opencv-telea",
                progress_bars=False,
                actors="1",
                batch_size=4,
                **{"output_layout": "files", **spec},
            )
        )
    )
    rows = load_history(str(tmp / "out"), {}, columns=list(STATS_SCHEMA.names)).to_pylist()
    return summary, rows, files_under(tmp) - before


def assert_all_under_out(tmp: Path, written: set[Path], rows: list[dict]) -> None:
    out = (tmp / "out").resolve()
    assert written
    for path in written:
        assert out in path.resolve().parents, f"written outside OUT: {path}"
        assert ".." not in path.relative_to(tmp).parts
    for row in rows:
        if row["output_uri"]:
            assert out / "images" in Path(row["output_uri"]).resolve().parents


def test_hostile_parquet_keys_never_write_outside_out(ray_local, tmp_path):
    photo, mask = corpus.png(corpus.photo(1)), corpus.mask_png()
    records = [{"key": key, "image": photo, "mask": mask} for key in HOSTILE_KEYS]
    # a PNG whose header claims 100000 x 100000 pixels, under the default pixel limit
    records.append({"key": "bomb", "image": corpus.header_only_png(100_000, 100_000), "mask": mask})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "hostile.parquet").write_bytes(data.parquet_shard(records))
    summary, rows, written = restore_local(tmp_path, "in")
    assert summary["config"]["max_image_pixels"] == PILLOW_DEFAULT_MAX_PIXELS  # set, not off
    assert summary["counts"]["listed"] == len(records) == len(rows)  # one row per hostile key
    assert_all_under_out(tmp_path, written, rows)
    by_key = {r["key"]: r for r in rows}
    assert by_key["hostile/__/__/escape"]["status"] == "ok"
    assert by_key["hostile/abs/path"]["status"] == "ok"
    assert by_key["hostile/nul_byte/__/__/x"]["status"] == "ok"
    assert by_key["hostile/#row=10"]["status"] == "error"  # the 2000-char key
    assert "longer than 255 bytes" in by_key["hostile/#row=10"]["error"]
    assert len(by_key["hostile/#row=10"]["error"]) < 300  # the message quotes a short prefix
    bomb = by_key["hostile/bomb"]
    assert bomb["status"] == "error" and "100000x100000" in bomb["error"]
    assert f"max_image_pixels={PILLOW_DEFAULT_MAX_PIXELS}" in bomb["error"]
    assert all("\x00" not in r["key"] and "\n" not in r["key"] for r in rows)


def test_hostile_tar_members_never_write_or_read_outside_out(ray_local, tmp_path):
    import io
    import tarfile

    photo, mask = corpus.png(corpus.photo(2)), corpus.mask_png()
    members = []
    for i, key in enumerate(k for k in HOSTILE_KEYS if "\x00" not in k):
        members += [(f"{key}.png", photo), (f"{key}.mask.png", mask), (f"sep{i}.txt", b"-")]
    buffer = io.BytesIO(data.tar_shard(members))
    with tarfile.open(fileobj=buffer, mode="a") as tar:  # links that point out of the archive
        for name, kind in (("evil.png", tarfile.SYMTYPE), ("evil2.png", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            tar.addfile(info)
            mask_info = tarfile.TarInfo(name.replace(".png", ".mask.png"))
            mask_info.size = len(mask)
            tar.addfile(mask_info, io.BytesIO(mask))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "hostile.tar").write_bytes(buffer.getvalue())
    summary, rows, written = restore_local(tmp_path, "in")
    assert summary["status"] == "finished" and len(rows) == summary["counts"]["listed"]
    assert_all_under_out(tmp_path, written, rows)
    by_key = {r["key"]: r for r in rows}
    for name in ("evil", "evil2"):  # links are never followed: the sample has no image
        row = by_key[f"hostile/{name}"]
        assert row["status"] == "error" and "no image member" in row["error"]
    assert by_key["hostile/__/__/escape"]["status"] == "ok"
    assert not [p for p in written if p.is_symlink()]


FAKE_KEY = "AKIALEAKCHECK7Q3XZ9W"
FAKE_SECRET = "leak+Check/SecretValue9f3b7c1e2d4a6b8c0e"
FAKE_TOKEN = "FwoGZXIvYXdzELeakCheckSessionToken0123456789abcdef"


def run_job(spec: dict, env: dict, workdir: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """`python -m jobs.restore` in a subprocess with its own Ray temp dir (short: Ray puts
    sockets there); returns the process and that dir."""
    config = workdir / "spec.yaml"
    config.write_text(yaml.safe_dump(spec))
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.restore", "--config", str(config)],
        cwd=REPO,
        env={**clean_env(), **env, "PYTHONPATH": str(REPO), "RAY_TMPDIR": str(ray_tmp)},
        capture_output=True,
        timeout=300,
    )
    return proc, ray_tmp


def leaks(blob: bytes) -> list[str]:
    return [s for s in (FAKE_KEY, FAKE_SECRET, FAKE_TOKEN) if s.encode() in blob]


@pytest.mark.parametrize("how", ["storage_options", "aws_env"])
def test_credentials_never_appear_in_logs_stats_or_summaries(seaweedfs, s3_prefix, tmp_path, how):
    s3 = seaweedfs.filesystem()
    root = s3_prefix.removeprefix("s3://")
    for i in range(3):
        item = data.good_item(70 + i, (48, 36))
        s3.pipe_file(f"{root}/images/{i}.png", item["image"])
        s3.pipe_file(f"{root}/masks/{i}.png", item["mask"])
    s3.pipe_file(f"{root}/images/corrupt.png", b"\x89PNG broken")
    s3.pipe_file(f"{root}/masks/corrupt.png", data.good_item(1, (48, 36))["mask"])
    s3.pipe_file(f"{root}/images/nomask.png", data.good_item(2, (48, 36))["image"])
    spec = {
        "images": f"{s3_prefix}/images",
        "masks": f"{s3_prefix}/masks",
        "output": f"{s3_prefix}/out",
        "engine": "opencv-telea",
        "actors": "1",
        "num_cpus": 2,
        "progress_bars": False,
        "progress_s": 1,
    }
    env = {"AWS_ENDPOINT_URL": seaweedfs.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}
    if how == "storage_options":
        spec["storage_options"] = {
            "key": FAKE_KEY,
            "secret": FAKE_SECRET,
            "endpoint_url": seaweedfs.endpoint_url,
        }
    else:
        env.update(AWS_ACCESS_KEY_ID=FAKE_KEY, AWS_SECRET_ACCESS_KEY=FAKE_SECRET)
        env["AWS_SESSION_TOKEN"] = FAKE_TOKEN
    proc, ray_tmp = run_job(spec, env, tmp_path)
    try:
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
        assert b'"error": 2' in proc.stdout  # the bad items made error messages to check
        assert leaks(output) == []
        # everything the run wrote under OUT: images, stats, run summary
        outputs = s3.find(f"{root}/out", refresh=True)
        assert any("/stats/" in p for p in outputs) and any("/runs/" in p for p in outputs)
        for path in outputs:
            assert leaks(s3.cat_file(path)) == [], path
        # Ray's logs of this run: driver, workers (task/actor output), raylet, GCS
        logs = [p for p in ray_tmp.rglob("*") if p.is_file() and not p.is_socket()]
        assert any(p.name.startswith("worker-") for p in logs), "no Ray worker logs found"
        for path in logs:
            try:
                blob = path.read_bytes()
            except OSError:
                continue
            assert leaks(blob) == [], path
    finally:
        subprocess.run(["rm", "-rf", str(ray_tmp)], check=False)
