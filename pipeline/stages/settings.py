"""Each stage's settings: frozen and typed, built once per run from the job's `RestoreConfig`.

`StageSettings.from_config` is the one place that reads the config for the restore task's
stages; `PoolSettings.from_config` does the same for the inference actors. A stage takes only
its own settings object, so a reader sees in one class everything that changes what it does.
The defaults below are the stages' own, for callers without a job (tests, benches, the
watermark sampler); a job always sets every field from its config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from spl_model.names import CLASSICAL_ENGINES

from ..config import RestoreConfig
from ..model import ModelChoice


@dataclass(frozen=True)
class ReadSettings:
    """How the read stage fetches items: storage, retries, items per block."""

    storage_options: dict[str, Any] = field(default_factory=dict)
    io_retries: int = 0
    batch_size: int = 16
    has_template: bool = False  # masks come from the job's template, not from each item


@dataclass(frozen=True)
class DecodeSettings:
    """How the decode stage turns bytes into pixels and a hole: the template and its
    placement (`stages/template.py`), and the size limit."""

    template: bytes | None = None
    alpha: bytes | None = None  # the template's opacity map
    anchor: str = "fill"
    offset: tuple[str, str] = ("0", "0")
    scale: float | None = None
    max_image_pixels: int | None = None
    search: int = 0
    min_score: float = 0.3
    mask_orientation: str = "display"
    keep_jpeg: bool = False  # JPEGs are written back as JPEGs: decode them only where read
    keep_png: bool = False  # PNGs are written back as PNGs: carry their bytes to the writer


@dataclass(frozen=True)
class PrepareSettings:
    """How the prepare and refine stages cut model windows."""

    engine: str
    strategy: str = "crop"
    dilate: int = 0
    prefill: str = "none"  # the generator's pre-fill (`spl_model.prefill`)


@dataclass(frozen=True)
class FinishSettings:
    """How the finish stage fills the hole: pastes the model's windows, or runs a classical
    engine, then de-blends light mark pixels."""

    engine: str
    dilate: int = 0
    mark_color: str = "white"


@dataclass(frozen=True)
class WriteSettings:
    """Where and how the sink writes each restored item and its stats row."""

    output: str
    output_format: str
    output_quality: int
    run_id: str
    settings_id: str
    strategy: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    io_retries: int = 0
    max_image_pixels: int | None = None
    output_layout: str = "files"
    input_layout: str = "pairs"
    engine: str | None = None
    model_id: str | None = None


@dataclass(frozen=True)
class StageSettings:
    """The settings of every stage of one restore task (`pipeline/dataset.py`)."""

    read: ReadSettings
    decode: DecodeSettings
    prepare: PrepareSettings
    finish: FinishSettings
    write: WriteSettings

    @classmethod
    def from_config(
        cls,
        config: RestoreConfig,
        model: ModelChoice,
        *,
        run_id: str,
        settings_id: str,
        input_layout: str,
        output_layout: str,
        template: bytes | None = None,
        alpha: bytes | None = None,
    ) -> StageSettings:
        io = config.io_options
        return cls(
            read=ReadSettings(io, config.io_retries, config.batch_size, template is not None),
            decode=DecodeSettings(
                template=template,
                alpha=alpha,
                anchor=config.mask_anchor,
                offset=config.mask_offset,
                scale=config.mask_scale,
                max_image_pixels=config.max_image_pixels,
                search=config.mask_search,
                min_score=config.mask_min_score,
                mask_orientation=config.mask_orientation,
                keep_jpeg=config.output_format in ("same", "jpg"),
                keep_png=config.output_format in ("same", "png"),
            ),
            prepare=PrepareSettings(model.engine, config.strategy, config.dilate, model.prefill),
            finish=FinishSettings(model.engine, config.dilate, config.mark_color),
            write=WriteSettings(
                output=config.output,
                output_format=config.output_format,
                output_quality=config.output_quality,
                run_id=run_id,
                settings_id=settings_id,
                strategy=config.strategy,
                storage_options=io,
                io_retries=config.io_retries,
                max_image_pixels=config.max_image_pixels,
                output_layout=output_layout,
                input_layout=input_layout,
                engine=model.engine,
                model_id=model.model_id,
            ),
        )


@dataclass(frozen=True)
class PoolSettings:
    """The run's inference actors: how many (up to at least, up to at most), what each asks of
    Ray, and what each loads (`stages/infer_actor.InferActor`)."""

    size: tuple[int, int]
    num_cpus: float
    num_gpus: float
    model: str
    expected_model_id: str | None = None
    device: str = "auto"
    threads: int | None = None
    journal: str | None = None  # the run's crash journal (named actor)
    precision: str = "auto"
    model_batch: int | None = None  # None: spl_model.inpainter.MODEL_BATCH for the device
    compile: bool | str = "auto"
    storage_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        config: RestoreConfig,
        model: ModelChoice,
        *,
        size: tuple[int, int],
        num_cpus: float,
        num_gpus: float,
        device: str,
        threads: int | None,
        journal: str | None,
    ) -> PoolSettings | None:
        """None when the engine needs no actors (the classical engines run in the tasks)."""
        if model.engine in CLASSICAL_ENGINES:
            return None
        return cls(
            size=size,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            model=model.source,
            expected_model_id=model.model_id,
            device=device,
            threads=threads,
            journal=journal,
            precision=config.precision,
            model_batch=config.model_batch,
            compile="auto" if config.compile is None else config.compile,
            storage_options=config.storage_options,
        )

    def actor_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of each actor's constructor: every field but what Ray is asked
        for (how many actors, their CPUs and GPUs)."""
        ray_only = ("size", "num_cpus", "num_gpus")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ray_only}
