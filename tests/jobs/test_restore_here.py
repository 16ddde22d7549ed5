"""`spl restore --address`: a driver on this machine joins the token-auth head over gRPC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_spl(
    args: list[str], env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    # the head runs on 127.0.0.1; a driver must not advertise the host's other address
    base["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_restore_joins_the_cluster_with_its_token(ray_head, archive, out_prefix, seaweedfs):
    gcs = f"127.0.0.1:{ray_head.gcs_port}"
    args = [
        "restore", "--address", gcs, "--images", archive.images, "--masks", archive.masks,
        "--output", out_prefix, "--engine", "opencv-ns", "--actors", "1", "--batch-size", "2",
        "--run-id", "here", "--no-progress-bars", *archive.storage_flags(),
    ]  # fmt: skip
    # the token the standard way; RAY_AUTH_MODE is left unset: spl turns token mode on
    result = run_spl(args, {"RAY_AUTH_TOKEN_PATH": str(ray_head.token_file)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "run here finished" in result.stdout
    fs = seaweedfs.filesystem()
    summary = json.loads(fs.cat_file(f"{out_prefix.removeprefix('s3://')}/runs/here.json"))
    assert summary["counts"]["ok"] == len(archive.keys)

    # Ray's GCS client retries (~20 s by default, 3 s here), logging each refusal; then one
    # sentence and no traceback
    wrong = run_spl(
        args,
        {"RAY_AUTH_TOKEN": "not-the-token", "RAY_gcs_server_port_wait_time_s": "3"},
        timeout=120,
    )
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr
    last = wrong.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: The Ray cluster at 127.0.0.1:"), wrong.stderr[-2000:]
    assert "rejected the authentication token from RAY_AUTH_TOKEN" in last
    assert "set RAY_AUTH_TOKEN" in last and "not-the-token" not in wrong.stderr
