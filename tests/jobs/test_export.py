"""`spl schedule export`: crontab lines and Kubernetes CronJobs that call `spl submit`."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

SPEC = {
    "images": "s3://archive/photos",
    "masks": "s3://archive/masks",
    "output": "s3://archive/restored",
    "mask_offset": "2%,2%",
    "storage_options": {
        "endpoint_url": "http://s3:8333",
        "key": "AKIAEXAMPLE",
        "secret": "hunter2",
    },
}


def schedules(tmp_path: Path) -> Path:
    (tmp_path / "weekly.yaml").write_text(yaml.safe_dump({**SPEC, "storage_options": {}}))
    path = tmp_path / "schedules.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "timezone": "Europe/Berlin",
                "address": "http://head:8265",
                "batches": {
                    "Nightly_Archive": {"cron": "0 2 * * *", "spec": SPEC},
                    "weekly": {"cron": "30 4 * * 0", "spec": "weekly.yaml"},
                    "fast": {"cron": "* * * * * */5", "spec": SPEC},
                },
            }
        )
    )
    return path


def test_crontab(spl_offline, tmp_path: Path) -> None:
    result = spl_offline("schedule", "export", str(schedules(tmp_path)))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "hunter2" not in text and "AKIAEXAMPLE" not in text
    assert "CRON_TZ=Europe/Berlin" in text and "RAY_ADDRESS=http://head:8265" in text
    lines = [
        line for line in text.splitlines() if line and not line.startswith(("#", "CRON_TZ", "RAY_"))
    ]
    assert len(lines) == 2  # the seconds-field batch cannot be a crontab line
    nightly = next(line for line in lines if "Nightly_Archive" in line)
    assert nightly.startswith("0 2 * * * spl submit ")
    assert r"2\%,2\%" in nightly and r"$(date -u +\%Y\%m\%dT\%H\%MZ)" in nightly
    args = shlex.split(nightly.split(" ", 5)[5].replace("\\%", "%").split(" --name ")[0])
    assert args[:2] == ["spl", "submit"] and "--skip-if-running" in args
    assert args[args.index("--images") + 1] == "s3://archive/photos"
    assert "endpoint_url=http://s3:8333" in args
    weekly = next(line for line in lines if "weekly" in line)
    assert f"--config {tmp_path / 'weekly.yaml'}" in weekly  # a spec file is referenced as is
    assert "left out credentials ['key', 'secret']" in text
    assert "has a seconds field" in text


def test_kubernetes(spl_offline, tmp_path: Path) -> None:
    result = spl_offline(
        "schedule", "export", str(schedules(tmp_path)), "--format", "kubernetes",
        "--image", "registry.example/spl:1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.stdout and "AKIAEXAMPLE" not in result.stdout
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds == [
        ("ConfigMap", "spl-nightly-archive"),
        ("CronJob", "spl-nightly-archive"),
        ("ConfigMap", "spl-weekly"),
        ("CronJob", "spl-weekly"),
    ]
    config_map, cron_job = docs[0], docs[1]
    spec = yaml.safe_load(config_map["data"]["job.yaml"])
    assert spec["images"] == "s3://archive/photos"
    assert spec["storage_options"] == {"endpoint_url": "http://s3:8333"}
    job = cron_job["spec"]
    assert job["schedule"] == "0 2 * * *" and job["timeZone"] == "Europe/Berlin"
    assert job["concurrencyPolicy"] == "Forbid"
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/spl:1"
    script = container["command"][-1]
    assert "spl submit --config /etc/spl/job.yaml --batch Nightly_Archive" in script
    assert "--wait" in script and "--no-ship" in script and "$(date -u +%Y%m%dT%H%MZ)" in script
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_ADDRESS"]["value"] == "http://head:8265"
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "ray-auth-token"
    assert pod["volumes"][0]["configMap"]["name"] == "spl-nightly-archive"
