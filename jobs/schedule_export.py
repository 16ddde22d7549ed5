"""`spl schedule export`: the same schedules as crontab lines or Kubernetes CronJobs.

Both call `spl submit` with the batch's spec, `--batch`, a run name made of the batch and the
minute it fired (so a duplicate firing submits once) and `--skip-if-running`. Credentials are
never written out: secret-looking storage options are dropped with a note, and the cluster
token comes from the environment (crontab) or a Kubernetes Secret.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from pipeline.config import is_secret

from .schedule import Batch, Schedules

NAME_STAMP = "%Y%m%dT%H%MZ"


class _Block(str):
    """A multi-line string YAML writes as a literal block (`|`)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Block, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False).rstrip()


def public_spec(spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The spec without credentials, and the dotted names of the options left out."""
    dropped: list[str] = []

    def clean(value: Any, prefix: str) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            name = f"{prefix}{key}"
            if is_secret(str(key)):
                dropped.append(name)
                continue
            out[key] = clean(item, name + ".")
        return out

    result = dict(spec)
    if isinstance(result.get("storage_options"), dict):
        result["storage_options"] = clean(result["storage_options"], "")
    result.pop("run_id", None)  # every run gets its own
    return result, dropped


def spec_flags(spec: dict[str, Any]) -> list[str]:
    """A spec as `spl submit` flags (the inverse of --config)."""
    args: list[str] = []
    for key, value in spec.items():
        flag = "--" + key.replace("_", "-")
        if key == "storage_options":
            for name, item in _flatten(value or {}):
                args += ["--storage-option", f"{name}={_scalar(item)}"]
        elif isinstance(value, bool):
            if key == "progress_bars":
                args.append(flag if value else "--no-progress-bars")
            elif value:
                args.append(flag)
        elif value is not None:
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            args += [flag, text]
    return args


def _flatten(options: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in options.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _scalar(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def submit_command(batch: Batch, config: str | None = None, date_fmt: str = NAME_STAMP) -> str:
    """A shell command line submitting one run of `batch` (for /bin/sh)."""
    spec, _ = public_spec(batch.spec)
    spec_args = ["--config", config] if config else spec_flags(spec)
    args = ["spl", "submit", *spec_args, "--batch", batch.name, "--skip-if-running"]
    name = f'--name "{batch.name}-$(date -u +{date_fmt})"'
    return " ".join(shlex.quote(a) for a in args) + " " + name


def crontab(schedules: Schedules, address: str | None = None) -> str:
    """Crontab lines (cron's `%` escaped) for every batch."""
    lines = [
        f"# spl schedules from {schedules.path.resolve()} (`spl schedule export --format crontab`)",
        "# The cron user needs `spl` on PATH and the cluster token the standard Ray way:",
        "#   RAY_AUTH_TOKEN_PATH=/path/to/token   (a file holding `ray get-auth-token` output)",
        f"CRON_TZ={schedules.timezone}",
    ]
    address = address or schedules.address
    lines.append(f"RAY_ADDRESS={address}" if address else "# RAY_ADDRESS=http://HEAD:8265")
    for batch in schedules.batches.values():
        _, dropped = public_spec(batch.spec)
        lines.append(f"# {batch.name}")
        if dropped:
            lines.append(f"#   left out credentials {dropped}: give them to the cluster instead")
        if batch.has_seconds:
            lines.append(f"#   cron {batch.cron!r} has a seconds field; crontab cannot run it")
            continue
        config = str(batch.spec_file) if batch.spec_file and not dropped else None
        command = submit_command(batch, config).replace("%", r"\%")
        lines.append(f"{batch.cron} {command}")
    return "\n".join(lines) + "\n"


def k8s_name(batch: str) -> str:
    """A DNS-1123 name of at most 52 characters (CronJob's limit)."""
    name = re.sub(r"[^a-z0-9-]+", "-", batch.lower()).strip("-") or "batch"
    return f"spl-{name}"[:52].rstrip("-")


def kubernetes(schedules: Schedules, address: str | None = None, image: str | None = None) -> str:
    """A ConfigMap (the spec) and a CronJob (runs `spl submit --wait`) per batch."""
    address = address or schedules.address or "http://RAYCLUSTER-head-svc:8265"
    docs: list[str] = [
        "# spl schedules as Kubernetes CronJobs (`spl schedule export --format kubernetes`).\n"
        "# Fill in: the image (this project installed), the Ray dashboard address, and a Secret\n"
        "# with the cluster token:  kubectl create secret generic ray-auth-token \\\n"
        "#   --from-literal=auth_token=$(ray get-auth-token)\n"
        "# concurrencyPolicy Forbid + `spl submit --wait` keep a batch from overlapping itself."
    ]
    for batch in schedules.batches.values():
        name = k8s_name(batch.name)
        spec, dropped = public_spec(batch.spec)
        if batch.has_seconds:
            docs.append(f"# {batch.name}: cron {batch.cron!r} has seconds; CronJobs cannot run it")
            continue
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "spl-restore"}},
            "data": {"job.yaml": _Block(yaml.safe_dump(spec, sort_keys=False))},
        }
        script = submit_command(batch, "/etc/spl/job.yaml", NAME_STAMP) + " --no-ship --wait"
        container = {
            "name": "submit",
            "image": image or "REPLACE-ME/spl-restore:0.1.0",
            "command": ["/bin/sh", "-c", f"exec {script}"],
            "env": [
                {"name": "RAY_ADDRESS", "value": address},
                {"name": "RAY_AUTH_MODE", "value": "token"},
                {
                    "name": "RAY_AUTH_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "ray-auth-token", "key": "auth_token"}},
                },
            ],
            "volumeMounts": [{"name": "spec", "mountPath": "/etc/spl", "readOnly": True}],
        }
        cron_job = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "spl-restore"}},
            "spec": {
                "schedule": batch.cron,
                "timeZone": schedules.timezone,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 3600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [container],
                                "volumes": [{"name": "spec", "configMap": {"name": name}}],
                            }
                        },
                    }
                },
            },
        }
        header = f"# {batch.name}"
        if dropped:
            header += f"\n# left out credentials {dropped}: give them to the cluster instead"
        docs.append(header + "\n" + _dump(config_map))
        docs.append(_dump(cron_job))
    return "\n---\n".join(docs) + "\n"
