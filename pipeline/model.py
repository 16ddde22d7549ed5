"""Which engine and weights a run uses, decided (and checked) once on the driver."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import spl_model
from spl_model.names import CLASSICAL_ENGINES

from .config import ConfigError, RestoreConfig, redact_url

log = logging.getLogger(__name__)
FALLBACK_ENGINE = "opencv-telea"


@dataclass(frozen=True)
class ModelChoice:
    engine: str  # spl | opencv-telea | opencv-ns
    source: str  # checkpoint path/URL, or the engine name
    model_id: str  # sha256 of the weights file (the engine name for OpenCV)
    prefill: str = "none"  # the generator's input convention, applied by the prepare stage


def choose_model(config: RestoreConfig) -> ModelChoice:
    """Resolve checkpoint/engine (bundled default, else OpenCV Telea with a warning) and load
    the model once here, so a bad checkpoint fails the job before any actor starts."""
    engine, source = config.engine, config.checkpoint
    if source is None and engine in CLASSICAL_ENGINES:
        source = engine
    if source is None:
        default = spl_model.default_checkpoint()
        if default is not None:
            engine, source = "spl", default
        elif engine == "spl":
            raise ConfigError(
                "`engine` spl needs `checkpoint` (a path or URL of SPL weights); no weights "
                "are bundled with this install"
            )
        else:
            log.warning(
                "no `checkpoint` or `engine` given and no bundled SPL weights: using %s",
                FALLBACK_ENGINE,
            )
            engine, source = FALLBACK_ENGINE, FALLBACK_ENGINE
    try:
        inpainter = build_inpainter(source, device="cpu", storage_options=config.storage_options)
    except spl_model.CheckpointError as exc:
        raise ConfigError(f"`checkpoint` {redact_url(source)!r} cannot be used: {exc}") from None
    return ModelChoice(
        engine=inpainter.engine,
        source=source,
        model_id=inpainter.model_id,
        prefill=inpainter.prefill_method,
    )


def build_inpainter(
    model: str,
    *,
    device: str = "auto",
    precision: str = "auto",
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> Any:
    """An `spl_model.Inpainter` for an engine name or a checkpoint path/URL."""
    source: Any = model
    if model not in CLASSICAL_ENGINES:
        source = spl_model.load_generator(model, device="cpu", storage_options=storage_options)
    return spl_model.Inpainter(source, device=device, precision=precision, **options)
