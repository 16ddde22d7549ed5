"""A thin client over Ray's Job Submission SDK for restore jobs.

Idempotency: a job's submission id is derived from its name (`spl-<name>`), and Ray refuses
a second job with an existing submission id, so submitting the same batch twice returns the
first job instead of starting another.

The spec travels in the job's runtime_env as `SPL_JOB_SPEC` (JSON), and the entrypoint is
`printenv SPL_JOB_SPEC | python -m jobs.restore --config /dev/stdin`: the command line that
Ray shows in job lists stays short and holds no storage credentials. The project itself
ships as the job's `working_dir` (without .venv, out/, .git and caches).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import redact_url

from . import auth

SPEC_ENV = "SPL_JOB_SPEC"
ENTRYPOINT = f"printenv {SPEC_ENV} | python -m jobs.restore --config /dev/stdin"
ID_PREFIX = "spl-"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
ACTIVE = frozenset({"PENDING", "RUNNING"})
WORKING_DIR_EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "out",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".cache",
    "bench/results",
]
META_BATCH, META_NAME, META_OUTPUT, META_RUN_ID = (
    "spl_batch",
    "spl_name",
    "spl_output",
    "spl_run_id",
)


class ClusterError(RuntimeError):
    """A cluster request that failed, as one sentence a user can act on."""


@dataclass(frozen=True)
class Job:
    """What `spl status` / `spl list` show about one job."""

    submission_id: str
    status: str
    message: str
    start_time: float | None
    end_time: float | None
    metadata: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def batch(self) -> str | None:
        return self.metadata.get(META_BATCH)

    @property
    def output(self) -> str | None:
        return self.metadata.get(META_OUTPUT)

    @property
    def run_id(self) -> str:
        return self.metadata.get(META_RUN_ID) or self.submission_id


def submission_id_for(name: str) -> str:
    """`spl-<name>` with characters Ray job ids and run ids allow; a short hash keeps names
    that had to be changed (or shortened) apart."""
    if name.startswith(ID_PREFIX) and re.fullmatch(r"[A-Za-z0-9._-]{1,120}", name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "job"
    if slug != name or len(slug) > 100:
        slug = f"{slug[:100]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return ID_PREFIX + slug


def default_address() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def project_root() -> Path | None:
    """The source tree to ship as working_dir, or None when spl runs from an installed wheel
    (the cluster's image then has to provide the package, as cluster.yaml's setup does)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "pipeline").is_dir() else None


@contextmanager
def cluster_errors(address: str) -> Iterator[None]:
    """Turn Ray's auth, connection and job-server errors into one-sentence ClusterErrors."""
    try:
        yield
    except ClusterError:
        raise
    except Exception as exc:
        if (cause := auth.auth_error_in(exc)) is not None:
            raise ClusterError(auth.auth_failure_sentence(address, cause)) from None
        import requests

        if not isinstance(exc, ConnectionError | requests.exceptions.ConnectionError):
            raise
        raise ClusterError(
            f"Cannot reach a Ray dashboard at {address}: start the cluster or pass its dashboard "
            "address (e.g. http://HEAD:8265) with --address or RAY_ADDRESS."
        ) from None


class Cluster:
    """One connection to a Ray cluster's job server (the dashboard address)."""

    def __init__(self, address: str | None = None) -> None:
        address = address or default_address()
        if not address:
            raise ClusterError(
                "No Ray cluster given: pass --address http://HEAD:8265 or set RAY_ADDRESS."
            )
        self.address = address
        if problem := auth.token_path_problem():
            raise ClusterError(problem)
        auth.use_cluster_token()
        from ray.job_submission import JobSubmissionClient

        with cluster_errors(address):
            self.client = JobSubmissionClient(address)
            self.client.list_jobs()  # the version check may pass without a token; this won't

    # ---- jobs ---------------------------------------------------------------------------
    def submit(
        self,
        spec: dict[str, Any],
        name: str,
        *,
        batch: str | None = None,
        working_dir: Path | None = None,
        env: dict[str, str] | None = None,
        entrypoint_num_cpus: float | None = None,
    ) -> tuple[Job, bool]:
        """Submit `spec` as job `spl-<name>`; (job, True) if started, (existing job, False)
        when a job of that name already exists (whatever its state)."""
        submission_id = submission_id_for(name)
        existing = self.find(submission_id)
        if existing is not None:
            return existing, False
        spec = {**spec, "run_id": spec.get("run_id") or submission_id}
        runtime_env: dict[str, Any] = {"env_vars": {**(env or {}), SPEC_ENV: json.dumps(spec)}}
        if working_dir is not None:
            runtime_env["working_dir"] = str(working_dir)
            runtime_env["excludes"] = list(WORKING_DIR_EXCLUDES)
        metadata = {
            META_NAME: name,
            META_BATCH: batch or name,
            META_OUTPUT: redact_url(str(spec.get("output", ""))),
            META_RUN_ID: str(spec["run_id"]),
        }
        with cluster_errors(self.address):
            try:
                self.client.submit_job(
                    entrypoint=ENTRYPOINT,
                    submission_id=submission_id,
                    runtime_env=runtime_env,
                    metadata=metadata,
                    entrypoint_num_cpus=entrypoint_num_cpus,
                )
            except RuntimeError as exc:
                if "already exists" not in str(exc):
                    raise ClusterError(f"Ray refused job {submission_id}: {_short(exc)}") from None
                job = self.find(submission_id)  # lost a race with another submitter
                if job is None:
                    raise
                return job, False
        return self.get(submission_id), True

    def find(self, job: str) -> Job | None:
        """The job with this submission id (or `spl-` name); None when the cluster has none."""
        with cluster_errors(self.address):
            for candidate in dict.fromkeys([job, submission_id_for(job)]):
                try:
                    return _job(self.client.get_job_info(candidate))
                except RuntimeError as exc:
                    if "404" not in str(exc) and "does not exist" not in str(exc):
                        raise ClusterError(f"Cannot read job {job}: {_short(exc)}") from None
        return None

    def get(self, job: str) -> Job:
        found = self.find(job)
        if found is None:
            raise ClusterError(f"No job {job!r} on the cluster at {self.address} (see `spl list`).")
        return found

    def list(self, batch: str | None = None, spl_only: bool = True) -> list[Job]:
        """Jobs on the cluster, oldest first; only spl's jobs unless `spl_only` is False."""
        with cluster_errors(self.address):
            jobs = [_job(info) for info in self.client.list_jobs() if info.submission_id]
        if spl_only:
            jobs = [j for j in jobs if META_BATCH in j.metadata]
        if batch is not None:
            jobs = [j for j in jobs if j.batch == batch]
        return sorted(jobs, key=lambda j: j.start_time or 0)

    def stop(self, job: str) -> Job:
        found = self.get(job)
        if not found.finished:
            with cluster_errors(self.address):
                self.client.stop_job(found.submission_id)
        return self.get(found.submission_id)

    def logs(self, job: str) -> str:
        found = self.get(job)
        with cluster_errors(self.address):
            return self.client.get_job_logs(found.submission_id)

    def follow_logs(self, job: str, write: Callable[[str], Any]) -> None:
        """Stream the job's logs to `write` until the job ends."""
        found = self.get(job)

        async def tail() -> None:
            async for chunk in self.client.tail_job_logs(found.submission_id):
                write(chunk)

        with cluster_errors(self.address), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp, inside Ray's SDK
            asyncio.run(tail())

    def wait(
        self,
        job: str,
        timeout_s: float | None = None,
        poll_s: float = 1.0,
        on_change: Callable[[Job], Any] | None = None,
    ) -> Job:
        """Poll until the job ends (or `timeout_s` passes); returns its last state."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = None
        while True:
            current = self.get(job)
            if on_change is not None and current.status != last:
                on_change(current)
            last = current.status
            if current.finished or (deadline is not None and time.monotonic() >= deadline):
                return current
            time.sleep(poll_s)


def read_run_summary(
    output: str, run_id: str, storage_options: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """OUT/runs/<run_id>.json as a dict, or None when it is not (yet) there or unreadable."""
    import fsspec

    url = f"{output.rstrip('/')}/runs/{run_id}.json"
    try:
        fs, path = fsspec.core.url_to_fs(url, **_remote_only(url, storage_options or {}))
        return json.loads(fs.cat_file(path))
    except (OSError, ValueError):
        return None
    except Exception as exc:  # e.g. botocore's errors for missing credentials
        if type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore", "s3fs"):
            return None
        raise


def _remote_only(url: str, options: dict[str, Any]) -> dict[str, Any]:
    return options if re.match(r"^[a-zA-Z][\w+.-]*://", url) and not url.startswith("file:") else {}


def _job(info: Any) -> Job:
    return Job(
        submission_id=info.submission_id,
        status=str(getattr(info.status, "value", info.status)),
        message=info.message or "",
        start_time=info.start_time / 1000 if info.start_time else None,
        end_time=info.end_time / 1000 if info.end_time else None,
        metadata=dict(info.metadata or {}),
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
