"""The `spl` group: fast help, every command registered, later commands load lazily."""

from __future__ import annotations

import subprocess
import sys

from jobs.cli import COMMANDS

from .conftest import one_line_error

DESIGN_COMMANDS = {
    "restore", "submit", "status", "logs", "stop", "list",
    "evaluate", "train", "report", "schedule", "demo",
    "watermark",  # `spl watermark detect`
    "data",  # builds the default model's photo set (docs/ARCHITECTURE.md)
    "compact",
}  # fmt: skip


def test_help_lists_every_command(spl_offline) -> None:
    result = spl_offline("--help")
    assert result.exit_code == 0
    assert DESIGN_COMMANDS == set(COMMANDS)
    for name in DESIGN_COMMANDS:
        assert f"  {name} " in result.stdout


def test_help_imports_neither_ray_nor_the_pipeline() -> None:
    code = (
        "import sys; from jobs.cli import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('ray', 'pipeline', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_every_command_has_help(spl_offline) -> None:
    for name in sorted(DESIGN_COMMANDS):
        result = spl_offline(name, "--help")
        assert result.exit_code == 0, (name, result.output)
        assert result.stdout.startswith("Usage: "), name
    for sub in ("run", "list", "history", "export"):
        assert spl_offline("schedule", sub, "--help").exit_code == 0


def test_missing_command_module_is_a_clean_error(spl_offline, monkeypatch) -> None:
    monkeypatch.setitem(COMMANDS, "report", ("jobs.no_such_module", "report", "Report."))
    result = spl_offline("report", "out/")
    assert result.exit_code == 1
    assert "not available" in one_line_error(result)
