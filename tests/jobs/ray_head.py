"""A real Ray head for the job-submission tests: token auth on, loopback only, its own temp
dir and ports, and a stop that ends only the processes it started."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

PORT_RANGE = (20000, 54000)


def free_port(taken: set[int]) -> int:
    """A port below 55000 that nothing on 127.0.0.1 listens on (nor binds its +1)."""
    for _ in range(500):
        port = random.randint(*PORT_RANGE)
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port found")


def free_range(taken: set[int], size: int) -> tuple[int, int]:
    for _ in range(200):
        start = random.randint(PORT_RANGE[0], PORT_RANGE[1] - size)
        ports = range(start, start + size)
        if any(p in taken for p in ports):
            continue
        ok = True
        for port in ports:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            taken.update(ports)
            return start, start + size - 1
    raise RuntimeError("no free port range found")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, out, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def processes_mentioning(text: str) -> set[int]:
    """Pids whose command line contains `text` (our unique temp dir)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.add(int(entry.name))
    return found


class RayHead:
    """`ray start --head --block` in the foreground of a child process we own."""

    def __init__(self, root: Path, token: str | None = None) -> None:
        self.root = root
        self.token = token or secrets.token_hex(16)
        self.token_file = root / "auth_token"
        self.temp_dir = root / "ray"
        self.process: subprocess.Popen | None = None
        taken: set[int] = set()
        self.gcs_port = free_port(taken)
        self.dashboard_port = free_port(taken)
        self.ports = {
            "--node-manager-port": free_port(taken),
            "--object-manager-port": free_port(taken),
            "--ray-client-server-port": free_port(taken),
            "--dashboard-agent-listen-port": free_port(taken),
            "--dashboard-agent-grpc-port": free_port(taken),
            "--runtime-env-agent-port": free_port(taken),
            "--metrics-export-port": free_port(taken),
        }
        self.worker_ports = free_range(taken, 40)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def client_env(self) -> dict[str, str | None]:
        """What a client needs: the address and the token the standard Ray way."""
        return {
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_file),
            "RAY_AUTH_TOKEN": None,
        }

    def autoscaling_config(self, worker_types: dict[str, dict], head_cpus: int = 2) -> dict:
        """A whole cluster config for the fake multi-node provider (the PyPI wheel lacks the
        example file `ray.cluster_utils.AutoscalingCluster` reads, and its `start` runs
        `ray stop --force`, which would end every Ray on the machine)."""
        return {
            "cluster_name": f"spl-fake-{self.gcs_port}",
            "max_workers": sum(t.get("max_workers", 0) for t in worker_types.values()),
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": 5,
            "provider": {
                "type": "fake_multinode",
                "gcs_address": f"127.0.0.1:{self.gcs_port}",
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
            },
            "auth": {},
            "available_node_types": {
                "ray.head.default": {
                    "resources": {"CPU": head_cpus},
                    "node_config": {},
                    "max_workers": 0,
                },
                **worker_types,
            },
            "head_node_type": "ray.head.default",
            "docker": {},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }

    def start(
        self,
        extra_env: dict[str, str] | None = None,
        timeout_s: float = 120,
        worker_types: dict[str, dict] | None = None,
        head_cpus: int = 2,
    ) -> None:
        """Start the head (`head_cpus` CPUs, no GPU); `worker_types` makes it an autoscaling
        cluster whose workers are started on this machine by Ray's fake multi-node provider."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST_"))}
        env.update(extra_env or {})
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_file),
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            RAY_USAGE_STATS_ENABLED="0",
            # keep 127.0.0.1: Ray otherwise swaps loopback for the host's reachable address
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # a throwaway cluster: stop at once
        )
        ray = str(Path(sys.executable).parent / "ray")
        args = [
            ray, "start", "--head", "--block",
            f"--port={self.gcs_port}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            "--include-dashboard=true",
            f"--num-cpus={head_cpus}",
            f"--temp-dir={self.temp_dir}",
            f"--min-worker-port={self.worker_ports[0]}",
            f"--max-worker-port={self.worker_ports[1]}",
            "--disable-usage-stats",
            *[f"{flag}={port}" for flag, port in self.ports.items()],
        ]  # fmt: skip
        if worker_types:
            config = self.root / "autoscaling.json"
            config.write_text(json.dumps(self.autoscaling_config(worker_types, head_cpus)))
            args.append(f"--autoscaling-config={config}")
            env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
        log = open(self.root / "ray-start.log", "wb")  # closed when the process ends
        self.process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        headers = {"Authorization": f"Bearer {self.token}"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited: {(self.root / 'ray-start.log').read_text()}")
            try:
                if requests.get(f"{self.address}/api/jobs/", headers=headers, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(
            f"Ray head not up in {timeout_s}s: {(self.root / 'ray-start.log').read_text()}"
        )

    def stop(self) -> None:
        """End `ray start --block` (it stops its node) and then anything left that we started.

        Pids are remembered with their start times, so a pid reused by someone else's process
        meanwhile is never signalled.
        """
        if self.process is None:
            return
        ours = _identify(descendants(self.process.pid) | processes_mentioning(str(self.temp_dir)))
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)  # a throwaway cluster: no need to drain long
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        ours.update(_identify(processes_mentioning(str(self.temp_dir))))
        _signal(ours, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_started(p) == t for p, t in ours.items()):
            time.sleep(0.2)
        _signal(ours, signal.SIGKILL)
        self.process = None


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def _identify(pids: set[int]) -> dict[int, str]:
    return {pid: t for pid in pids if (t := _started(pid)) is not None}


def _signal(ours: dict[int, str], sig: int) -> None:
    for pid, started in ours.items():
        if _started(pid) == started:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
