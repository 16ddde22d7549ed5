"""Bundled generator weights (see README.md in this folder)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_WEIGHTS = Path(__file__).with_name("spl-small.safetensors")


def default_checkpoint() -> str | None:
    """Path of the bundled default weights, or None when this install carries none."""
    return str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_file() else None
