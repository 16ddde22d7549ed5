"""SPL training on Ray Train: DDP across GPU workers on a cluster, CPU workers here.

Checkpoints live under OUTPUT/checkpoints/step-<N>/ (native generator weights + trainer state);
OUTPUT/checkpoints/latest.json is written last and names the newest complete one, so a run that
is stopped and started again resumes from it. The final weights are OUTPUT/generator.safetensors.
"""

from __future__ import annotations

import io
import json
import logging
import platform
import posixpath
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from spl_model import build_generator, load_generator, save_generator
from spl_model.discriminator import PatchDiscriminator
from spl_model.generator import CONFIGS, GeneratorConfig
from spl_model.teachers import TEACHER_CHANNELS, TEACHERS, build_teacher
from spl_model.training import LossWeights, SPLTrainer

from .config import ConfigError, redact
from .storage import atomic_write, filesystem, read_bytes
from .train_data import batches, list_images

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """One training job. `model` is a config name or a dict of GeneratorConfig fields."""

    images: str
    output: str
    model: str | dict = "spl-small"
    teacher: str = "efficientnet-lite0"
    init: str | None = None  # fine-tune from these weights (official, bare or native)
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    l1_weight: float = 10.0
    gan_weight: float = 1.0
    prior_weight: float = 1.0
    hole_ratio: tuple[float, float] = (0.1, 0.6)
    workers: int = 1
    use_gpu: bool = False
    checkpoint_every: int = 100
    seed: int = 0
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.teacher not in TEACHERS:
            raise ConfigError(f"`teacher` must be one of {TEACHERS}, got {self.teacher!r}")
        if isinstance(self.model, str) and self.model not in CONFIGS:
            raise ConfigError(f"`model` must be one of {sorted(CONFIGS)} or a config mapping")
        for name in ("steps", "batch_size", "workers", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"`{name}` must be a positive integer")
        low, high = (float(v) for v in self.hole_ratio)
        if not 0 <= low < high <= 1:
            raise ConfigError(f"`hole_ratio` must be LOW:HIGH within [0, 1], got {self.hole_ratio}")
        self.hole_ratio = (low, high)

    def generator_config(self) -> GeneratorConfig:
        base = CONFIGS[self.model] if isinstance(self.model, str) else GeneratorConfig(**self.model)
        if self.teacher in TEACHER_CHANNELS:
            base = replace(base, teacher_channels=TEACHER_CHANNELS[self.teacher])
        return base


def run_training(config: TrainConfig) -> dict[str, Any]:
    """Train on Ray Train until `steps`, resuming from OUTPUT's latest checkpoint; a summary."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    list_images(config.images, config.storage_options)  # fail fast on an empty data URL
    start = time.time()
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=asdict(config),
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu),
        run_config=RunConfig(
            name=f"spl-train-{int(start)}", storage_path=tempfile.mkdtemp(prefix="spl-train-")
        ),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    latest = read_latest(config.output, config.storage_options)
    return {
        "steps": latest["step"] if latest else 0,
        "wall_s": time.time() - start,
        **(latest or {}),
    }


def read_latest(output: str, storage_options: dict[str, Any] | None = None) -> dict | None:
    fs, root = filesystem(output, storage_options)
    path = posixpath.join(root, "checkpoints", "latest.json")
    return json.loads(read_bytes(fs, path)) if fs.exists(path) else None


def _worker_loop(raw: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    config = TrainConfig(**raw)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.seed + rank)

    generator, provenance = _initial_generator(config)
    discriminator = PatchDiscriminator()
    teacher = build_teacher(config.teacher)
    trainer = SPLTrainer(
        ray.train.torch.prepare_model(generator),
        ray.train.torch.prepare_model(discriminator),
        teacher.to(device) if teacher is not None else None,
        lr=config.lr,
        weights=LossWeights(config.l1_weight, config.gan_weight, config.prior_weight),
    )
    latest = read_latest(config.output, config.storage_options)
    if latest:
        _resume(trainer, generator, config, latest)
        log.info("resumed from step %d", trainer.step_count)

    files = list_images(config.images, config.storage_options)
    stream = batches(
        files, config.images, config.batch_size, rank, world, config.seed + trainer.step_count,
        config.hole_ratio, config.storage_options,
    )  # fmt: skip
    while trainer.step_count < config.steps:
        small, big, mask = (torch.from_numpy(a).to(device) for a in next(stream))
        losses = trainer.step(
            small.permute(0, 3, 1, 2).contiguous(),
            big.permute(0, 3, 1, 2).contiguous(),
            mask[:, None].contiguous(),
        )
        done = trainer.step_count
        if rank == 0 and (done % config.checkpoint_every == 0 or done == config.steps):
            _save(trainer, generator, config, provenance, losses)
        ray.train.report({"step": done, **losses})


def _initial_generator(config: TrainConfig) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A fresh generator, or one seeded from `init` (its prior head re-made if channels differ)."""
    cfg = config.generator_config()
    generator = build_generator(cfg)
    provenance: dict[str, Any] = {"init": None}
    if config.init:
        source = load_generator(config.init, storage_options=config.storage_options)
        cfg = replace(
            GeneratorConfig(**source.spl_info["config"]), teacher_channels=cfg.teacher_channels
        )
        generator = build_generator(cfg)
        state = source.state_dict()
        if source.config.teacher_channels != cfg.teacher_channels:  # new teacher: new prior head
            state = {k: v for k, v in state.items() if not k.startswith("feature_mapping.")}
        generator.load_state_dict(state, strict=False)
        provenance["init"] = {
            "source": source.spl_info["source"],
            "sha256": source.spl_info["model_id"],
        }
    return generator, provenance


def _save(
    trainer: SPLTrainer,
    generator: torch.nn.Module,
    config: TrainConfig,
    provenance: dict[str, Any],
    losses: dict[str, float],
) -> None:
    fs, root = filesystem(config.output, config.storage_options)
    step = trainer.step_count
    folder = posixpath.join(root, "checkpoints", f"step-{step:08d}")
    meta = {
        **provenance,
        "teacher": config.teacher,
        "step": step,
        "train_config": redact(asdict(config)),
        "losses": losses,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "generator.safetensors"
        sha = save_generator(generator, weights, **meta)
        blob = weights.read_bytes()
    state = io.BytesIO()
    torch.save(trainer.state_dict(), state)
    atomic_write(fs, posixpath.join(folder, "generator.safetensors"), blob)
    atomic_write(fs, posixpath.join(folder, "trainer.pt"), state.getvalue())
    if step == config.steps:
        atomic_write(fs, posixpath.join(root, "generator.safetensors"), blob)
    latest = {"step": step, "checkpoint": folder, "sha256": sha, "losses": losses}
    atomic_write(
        fs, posixpath.join(root, "checkpoints", "latest.json"), json.dumps(latest).encode()
    )


def _resume(
    trainer: SPLTrainer, generator: torch.nn.Module, config: TrainConfig, latest: dict
) -> None:
    fs, _ = filesystem(config.output, config.storage_options)
    weights = read_bytes(fs, posixpath.join(latest["checkpoint"], "generator.safetensors"))
    state = read_bytes(fs, posixpath.join(latest["checkpoint"], "trainer.pt"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generator.safetensors"
        path.write_bytes(weights)
        generator.load_state_dict(load_generator(path).state_dict())
    trainer.load_state_dict(torch.load(io.BytesIO(state), map_location="cpu", weights_only=True))
