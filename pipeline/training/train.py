"""SPL training: in this process (`launcher: local`, one CPU or GPU) or on Ray Train (DDP across
workers on a cluster).

Checkpoints live under OUTPUT/checkpoints/step-<N>/ (native generator weights + trainer state);
OUTPUT/checkpoints/latest.json is written last and names the newest complete one, so a run that
is stopped and started again resumes from it. The final weights are OUTPUT/generator.safetensors,
written when the run reaches `steps` or its `time_limit_min`. With `val_images`, every
`val_every` steps the model and Telea are scored on fixed held-out pairs: OUTPUT/validation/
gets `step-<N>.png` (masked | Telea | model | original) and `log.jsonl`.
"""

from __future__ import annotations

import io
import json
import logging
import math
import platform
import posixpath
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from spl_model import build_generator, load_generator, save_generator
from spl_model.discriminator import PatchDiscriminator
from spl_model.generator import CONFIGS, GeneratorConfig
from spl_model.prefill import PREFILLS
from spl_model.teachers import TEACHER_CHANNELS, TEACHERS, build_teacher
from spl_model.training import LossWeights, SPLTrainer

from ..config import ConfigError, redact
from ..ray_init import ensure_ray
from ..storage import atomic_write, filesystem, read_bytes
from .data import PhotoCrops, list_images

log = logging.getLogger(__name__)
LAUNCHERS = ("ray", "local")
SCHEDULES = ("constant", "cosine")

@dataclass
class TrainConfig:
    """One training job. `model` is a config name or a dict of GeneratorConfig fields."""

    images: str
    output: str
    model: str | dict = "spl-small"
    teacher: str = "efficientnet-lite0"
    prefill: str = "none"  # input convention of the trained generator (see spl_model.prefill)
    init: str | None = None  # fine-tune from these weights (official, bare or native)
    steps: int = 1000
    time_limit_min: float | None = None  # stop (and write the final weights) after this long
    batch_size: int = 4
    lr: float = 1e-4
    lr_schedule: str = "constant"  # or cosine: to 0 over the run (steps or time limit)
    betas: tuple[float, float] = (0.0, 0.9)
    l1_weight: float = 10.0
    gan_weight: float = 1.0
    prior_weight: float = 1.0
    hole_ratio: tuple[float, float] = (0.1, 0.6)
    stamp_masks: float = 0.0  # share of samples with watermark-shaped masks at native scale
    precision: str = "auto"  # bf16 on CUDA, fp32 on CPU
    launcher: str = "ray"
    workers: int = 1
    use_gpu: bool = False
    loader_workers: int = 2  # data-loading processes per training worker
    checkpoint_every: int = 100
    log_every: int = 10
    val_images: str | None = None
    val_every: int = 500
    seed: int = 0
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        choices = {
            "teacher": TEACHERS, "prefill": PREFILLS, "launcher": LAUNCHERS,
            "lr_schedule": SCHEDULES, "precision": ("auto", "fp32", "bf16"),
        }  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}")
        if isinstance(self.model, str) and self.model not in CONFIGS:
            raise ConfigError(f"`model` must be one of {sorted(CONFIGS)} or a config mapping")
        positive = ("steps", "batch_size", "workers", "checkpoint_every", "log_every", "val_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"`{name}` must be a positive integer")
        if int(self.loader_workers) < 0:
            raise ConfigError("`loader_workers` must be 0 or more")
        if self.launcher == "local" and self.workers != 1:
            raise ConfigError("`workers` must be 1 with `launcher: local` (use ray for more)")
        if self.time_limit_min is not None and float(self.time_limit_min) <= 0:
            raise ConfigError("`time_limit_min` must be positive")
        low, high = (float(v) for v in self.hole_ratio)
        if not 0 <= low < high <= 1:
            raise ConfigError(f"`hole_ratio` must be LOW:HIGH within [0, 1], got {self.hole_ratio}")
        self.hole_ratio = (low, high)
        if not 0 <= float(self.stamp_masks) <= 1:
            raise ConfigError(f"`stamp_masks` must be within [0, 1], got {self.stamp_masks}")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]

    def generator_config(self) -> GeneratorConfig:
        base = CONFIGS[self.model] if isinstance(self.model, str) else GeneratorConfig(**self.model)
        base = replace(base, prefill=self.prefill)
        if self.teacher in TEACHER_CHANNELS:
            base = replace(base, teacher_channels=TEACHER_CHANNELS[self.teacher])
        return base


def run_training(config: TrainConfig) -> dict[str, Any]:
    """Train until `steps` (or the time limit), resuming from OUTPUT's latest checkpoint."""
    list_images(config.images, config.storage_options)  # fail fast on an empty data URL
    start = time.time()
    if config.launcher == "local":
        device = torch.device("cuda" if config.use_gpu else "cpu")
        train_loop(config, rank=0, world=1, device=device)
    else:
        _run_on_ray_train(config, start)
    latest = read_latest(config.output, config.storage_options)
    return {
        "steps": latest["step"] if latest else 0,
        "wall_s": time.time() - start,
        **(latest or {}),
    }


def _run_on_ray_train(config: TrainConfig, start: float) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ensure_ray(log_to_driver=True)  # local unless RAY_ADDRESS names a cluster
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config=asdict(config),
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu),
        run_config=RunConfig(
            name=f"spl-train-{int(start)}", storage_path=tempfile.mkdtemp(prefix="spl-train-")
        ),
    )
    result = trainer.fit()
    if result.error:
        raise result.error


def read_latest(output: str, storage_options: dict[str, Any] | None = None) -> dict | None:
    fs, root = filesystem(output, storage_options)
    path = posixpath.join(root, "checkpoints", "latest.json")
    return json.loads(read_bytes(fs, path)) if fs.exists(path) else None


def _ray_worker(raw: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    train_loop(
        TrainConfig(**raw),
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        device=ray.train.torch.get_device(),
        prepare=ray.train.torch.prepare_model,
        report=ray.train.report,
    )


def train_loop(
    config: TrainConfig,
    rank: int,
    world: int,
    device: torch.device,
    prepare: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """The training loop of one worker (rank 0 saves, logs and validates)."""
    torch.manual_seed(config.seed + rank)
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    generator, provenance = _initial_generator(config)
    generator, discriminator = generator.to(device), PatchDiscriminator().to(device)
    teacher = build_teacher(config.teacher)
    trainer = SPLTrainer(
        prepare(generator),
        prepare(discriminator),
        teacher.to(device) if teacher is not None else None,
        lr=config.lr,
        weights=LossWeights(config.l1_weight, config.gan_weight, config.prior_weight),
        betas=config.betas,
        precision=precision,
    )
    latest = read_latest(config.output, config.storage_options)
    if latest:
        _resume(trainer, generator, config, latest)
        log.info("resumed from step %d", trainer.step_count)

    files = list_images(config.images, config.storage_options)
    data = PhotoCrops(
        files, config.images, config.hole_ratio, generator.config.prefill,
        stamp_masks=config.stamp_masks, seed=config.seed + trainer.step_count, rank=rank,
        world_size=world, storage_options=config.storage_options,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=config.batch_size,
        num_workers=config.loader_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if config.loader_workers else None,
        persistent_workers=config.loader_workers > 0,
    )
    pairs = None
    if rank == 0 and config.val_images:
        from .validate import validation_pairs

        pairs = validation_pairs(config.val_images, config.seed, config.storage_options)
    clock = _Clock(config, trainer.step_count)
    losses: dict[str, float] = {}
    residual = generator.config.prefill != "none"
    for batch in loader:
        if trainer.step_count >= config.steps or clock.out_of_time():
            break
        trainer.set_lr(_lr(config, clock.progress(trainer.step_count)))
        image, image_512, mask = (
            _to_device(batch[k], device) for k in ("image", "image_512", "mask")
        )
        prefilled = _to_device(batch["prefilled"], device) if residual else None
        losses = trainer.step(image, image_512, mask, prefilled)
        done = trainer.step_count
        if report is not None:
            report({"step": done, **losses})
        if rank != 0:
            continue
        if done % config.log_every == 0:
            clock.log(done, losses, config.batch_size * world)
        if pairs is not None and done % config.val_every == 0:
            _validate(generator, pairs, config, done)
        if done % config.checkpoint_every == 0:
            _save(trainer, generator, config, provenance, losses, final=False)
    if rank == 0:
        if pairs is not None and trainer.step_count % config.val_every:
            _validate(generator, pairs, config, trainer.step_count)
        _save(trainer, generator, config, provenance, losses, final=True)


def _to_device(array: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 N×H×W(×3) from the loader → float N×C×H×W in [0, 1] on `device`."""
    x = array.to(device, non_blocking=True)
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float().div_(255).contiguous() if x.shape[1] == 3 else x.float().contiguous()


def _lr(config: TrainConfig, progress: float) -> float:
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _Clock:
    """Wall time, progress (the larger of steps and time-limit fractions) and the progress log."""

    def __init__(self, config: TrainConfig, first_step: int) -> None:
        self.config, self.first_step = config, first_step
        self.start = self.last = time.time()
        self.last_step = first_step
        self.limit_s = 60 * config.time_limit_min if config.time_limit_min else None

    def out_of_time(self) -> bool:
        return self.limit_s is not None and time.time() - self.start >= self.limit_s

    def progress(self, step: int) -> float:
        by_steps = step / self.config.steps
        if self.limit_s is None:
            return by_steps
        return max(by_steps, (time.time() - self.start) / self.limit_s)

    def log(self, step: int, losses: dict[str, float], batch: int) -> None:
        now = time.time()
        rate = (step - self.last_step) * batch / max(now - self.last, 1e-9)
        per_step = (now - self.start) / max(step - self.first_step, 1)
        left = (self.config.steps - step) * per_step
        if self.limit_s is not None:
            left = min(left, self.limit_s - (now - self.start))
        self.last, self.last_step = now, step
        parts = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
        log.info(
            "step %d/%d %s | %.1f img/s | %s left",
            step, self.config.steps, parts, rate, _duration(max(left, 0.0)),
        )  # fmt: skip


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _validate(generator: torch.nn.Module, pairs: list, config: TrainConfig, step: int) -> None:
    from .validate import validate

    scores, grid = validate(generator, pairs)
    fs, root = filesystem(config.output, config.storage_options)
    folder = posixpath.join(root, "validation")
    atomic_write(fs, posixpath.join(folder, f"step-{step:08d}.png"), grid)
    path = posixpath.join(folder, "log.jsonl")
    history = read_bytes(fs, path).decode() if fs.exists(path) else ""
    line = json.dumps({"step": step, **{k: round(v, 4) for k, v in scores.items()}})
    atomic_write(fs, path, (history + line + "\n").encode())
    log.info("validation at step %d: %s", step, line)


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
    final: bool,
) -> None:
    """A step checkpoint (weights + trainer state, then latest.json); `final` also publishes
    OUTPUT/generator.safetensors."""
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
    if final:
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
