"""`spl submit | status | logs | stop | list` against a real Ray head with token auth on, on a
job that reads from and writes to SeaweedFS."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.submit import WORKING_DIR_EXCLUDES, project_root, submission_id_for

from .conftest import Spl, one_line_error

S3_SECRET = "spl-test-secret"


def job_flags(archive, output: str) -> list[str]:
    return [
        "--images", archive.images, "--masks", archive.masks, "--output", output,
        "--engine", "opencv-telea", "--batch-size", "2", "--actors", "1",
        "--no-progress-bars", *archive.storage_flags(),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_job(ray_head, archive, seaweedfs):
    """Submit one small job, submit it again, and wait for it through `spl status --wait`."""
    spl = Spl(ray_head.client_env())
    output = f"s3://{seaweedfs.bucket}/jobs-submit-out"
    first = spl("submit", *job_flags(archive, output), "--name", "e2e")
    second = spl("submit", *job_flags(archive, output), "--name", "e2e")
    status = spl("status", "e2e", "--wait", "--timeout", "240", "--json", *archive.storage_flags())
    return {"first": first, "second": second, "status": status, "output": output, "spl": spl}


def test_submit_prints_job_id_and_is_idempotent(finished_job) -> None:
    first, second = finished_job["first"], finished_job["second"]
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "spl-e2e" == submission_id_for("e2e")
    assert "submitted spl-e2e" in first.stderr
    assert second.exit_code == 0 and second.stdout.strip() == "spl-e2e"
    assert "already exists" in second.stderr
    listing = finished_job["spl"]("list", "--json")
    assert [j["submission_id"] for j in json.loads(listing.stdout)].count("spl-e2e") == 1


def test_status_reports_success_and_run_summary(finished_job, archive) -> None:
    result = finished_job["status"]
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["job"]["status"] == "SUCCEEDED"
    summary = report["summary"]
    assert summary["run_id"] == "spl-e2e" and summary["status"] == "finished"
    assert summary["counts"]["ok"] == len(archive.keys)
    assert summary["counts"]["listed"] == len(archive.keys)
    human = finished_job["spl"]("status", "spl-e2e", *archive.storage_flags())
    assert "SUCCEEDED" in human.stdout and f"ok {len(archive.keys)}" in human.stdout


def test_outputs_landed_in_object_storage(finished_job, archive, seaweedfs) -> None:
    fs = seaweedfs.filesystem()
    root = finished_job["output"].removeprefix("s3://")
    for key in archive.keys:
        assert fs.exists(f"{root}/images/{key}.png"), key
    stats = [p for p in fs.find(f"{root}/stats") if p.endswith(".parquet")]
    rows = sum(pq.read_table(fs.open(p, "rb")).num_rows for p in stats)
    assert rows == len(archive.keys)
    assert fs.exists(f"{root}/runs/spl-e2e.json")


def test_logs_and_follow(finished_job) -> None:
    spl = finished_job["spl"]
    logs = spl("logs", "spl-e2e")
    assert logs.exit_code == 0 and "spl-e2e" in logs.stdout
    followed = spl("logs", "e2e", "--follow")  # a finished job: prints everything and returns
    assert followed.exit_code == 0 and "spl-e2e" in followed.stdout


def test_no_command_prints_credentials(finished_job, ray_head, archive) -> None:
    spl = finished_job["spl"]
    outputs = [finished_job[k].output for k in ("first", "second", "status")]
    outputs += [spl(*args).output for args in (["logs", "e2e"], ["list"], ["status", "e2e"])]
    for text in outputs:
        assert ray_head.token not in text
        assert S3_SECRET not in text


def test_stop(spl, archive, out_prefix) -> None:
    result = spl("submit", *job_flags(archive, out_prefix), "--name", "to-stop")
    assert result.exit_code == 0, result.output
    stopped = spl("stop", "to-stop", "--wait")
    assert stopped.exit_code == 0, stopped.output
    assert "STOPPED" in stopped.stderr or "SUCCEEDED" in stopped.stderr  # it may win the race
    status = spl("status", "to-stop", "--json")
    assert json.loads(status.stdout)["job"]["status"] in ("STOPPED", "SUCCEEDED")


def test_wrong_token_is_one_sentence(spl, ray_head) -> None:
    result = spl("list", env={"RAY_AUTH_TOKEN": "not-the-token"})
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "rejected the authentication token from RAY_AUTH_TOKEN" in line
    assert "set RAY_AUTH_TOKEN" in line and "not-the-token" not in result.output


def test_missing_token_is_one_sentence(spl, ray_head, tmp_path: Path, archive) -> None:
    no_token = {
        "RAY_AUTH_TOKEN": None,
        "RAY_AUTH_TOKEN_PATH": None,
        "RAY_AUTH_MODE": None,
        "HOME": str(tmp_path),  # no ~/.ray/auth_token either
    }
    for args in (["status", "e2e"], ["submit", *job_flags(archive, "s3://x/y"), "--name", "n"]):
        result = spl(*args, env=no_token)
        assert result.exit_code == 1
        line = one_line_error(result)
        assert f"{ray_head.address} requires an authentication token" in line
        assert "set RAY_AUTH_TOKEN" in line


def test_unreadable_token_path_is_one_sentence(spl, tmp_path: Path) -> None:
    result = spl("list", env={"RAY_AUTH_TOKEN_PATH": str(tmp_path / "nope")})
    assert result.exit_code == 1
    line = one_line_error(result)
    assert f"RAY_AUTH_TOKEN_PATH is {tmp_path / 'nope'}, which cannot be read" in line


def test_unreachable_cluster_is_one_sentence(spl_offline) -> None:
    result = spl_offline("list", "--address", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "Cannot reach a Ray dashboard" in one_line_error(result)
    result = spl_offline("list")
    assert result.exit_code == 1 and "RAY_ADDRESS" in one_line_error(result)


def test_unknown_job(spl) -> None:
    result = spl("status", "never-submitted")
    assert result.exit_code == 1 and "No job 'never-submitted'" in one_line_error(result)


def test_working_dir_ships_the_project_small(tmp_path: Path) -> None:
    from ray._private.runtime_env.packaging import create_package

    root = project_root()
    assert root is not None and (root / "jobs" / "restore.py").exists()
    package = tmp_path / "pkg.zip"
    create_package(str(root), package, include_gitignore=True, excludes=WORKING_DIR_EXCLUDES)
    names = zipfile.ZipFile(package).namelist()
    assert "jobs/restore.py" in names and "pipeline/config.py" in names
    for name in names:
        top = name.split("/")[0]
        assert top not in (".git", ".venv", "out", "__pycache__"), name
        assert "__pycache__" not in name
    assert package.stat().st_size < 20 * 1024 * 1024
