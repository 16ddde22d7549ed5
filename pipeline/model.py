"""Which engine and weights a run uses, decided (and checked) once on the driver."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .config import ConfigError, RestoreConfig, redact_url

log = logging.getLogger(__name__)
FALLBACK_ENGINE = "opencv-telea"
CLASSICAL_ENGINES = ("opencv-telea", "opencv-ns")  # full-resolution CPU engines: no actors


@dataclass(frozen=True)
class ModelChoice:
    engine: str  # spl | opencv-telea | opencv-ns
    source: str  # checkpoint path/URL, or the engine name
    model_id: str  # sha256 of the weights file (the engine name for OpenCV)
    prefill: str = "none"  # the generator's input convention, applied by the prepare stage


def choose_model(config: RestoreConfig) -> ModelChoice:
    """Resolve checkpoint/engine (bundled default, else OpenCV Telea with a warning) and load
    the model once here, so a bad checkpoint fails the job before any actor starts."""
    import spl_model

    from .stages.infer import build_inpainter

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
