"""cluster.yaml against Ray's own autoscaler schema and what `ray up` checks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_valid_against_rays_schema() -> None:
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(load(), schema)


def test_passes_ray_up_preparation_and_validation() -> None:
    config = prepare_config(load())  # fills provider defaults the way `ray up` does
    validate_config(config)
    assert config["provider"]["type"] == "aws"


def test_cpu_head_and_autoscaling_gpu_workers() -> None:
    config = load()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    gpu = [t for t in workers if t["resources"].get("GPU", 0) >= 1]
    assert gpu and gpu[0]["min_workers"] < gpu[0]["max_workers"] <= config["max_workers"]
    assert gpu[0]["node_config"]["InstanceType"].startswith(("g", "p"))


def test_installs_project_uses_token_auth_and_sizes_object_store() -> None:
    config = load()
    assert config["file_mounts"]["~/spl-restore"] == "."
    assert any("pip install" in c and "spl-restore" in c for c in config["setup_commands"])
    assert {".git", ".venv", "out"} <= set(config["rsync_exclude"])
    assert "gpu" in config["docker"]["image"] and "2.60.0" in config["docker"]["image"]
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = commands[-1]
        assert "RAY_AUTH_MODE=token" in start and "--object-store-memory=" in start
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "FILL IN" in (ROOT / "cluster.yaml").read_text()
