"""The job spec on the command line: one flag per key, --config precedence, clean errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from jobs.cmd_restore import restore
from jobs.spec import parse_storage_options
from pipeline.config import RestoreConfig

from .conftest import one_line_error


def write_spec(tmp_path: Path, **spec: object) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def dry_run(spl, *args: str) -> dict:
    result = spl("restore", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def test_every_spec_key_is_a_flag() -> None:
    names = {p.name for p in restore.params}
    opts = {o for p in restore.params for o in p.opts}
    for field in dataclasses.fields(RestoreConfig):
        if field.name == "storage_options":
            assert "--storage-option" in opts
        else:
            assert field.name in names
            assert "--" + field.name.replace("_", "-") in opts
    assert "--mask-template" in opts and "--address" in opts


def test_flags_build_the_spec(spl_offline) -> None:
    spec = dry_run(
        spl_offline,
        "--images", "s3://a/img", "--masks", "s3://a/masks", "--output", "s3://a/out",
        "--engine", "opencv-telea", "--batch-size", "3", "--actors", "1:2", "--retry-failed",
        "--mask-offset", "4,5", "--no-compile",
    )  # fmt: skip
    assert spec["images"] == "s3://a/img" and spec["engine"] == "opencv-telea"
    assert spec["compile"] is False
    assert spec["batch_size"] == 3 and spec["actors"] == "1:2" and spec["retry_failed"] is True
    assert spec["mask_offset"] == ["4", "5"]


def test_config_file_then_only_given_flags_override(spl_offline, tmp_path: Path) -> None:
    config = write_spec(
        tmp_path,
        images="s3://a/img",
        masks="s3://a/masks",
        output="s3://a/out",
        strategy="resize",
        batch_size=4,
        progress_bars=True,
        storage_options={"endpoint_url": "http://x:1", "anon": False},
    )
    spec = dry_run(spl_offline, "--config", config)
    assert spec["strategy"] == "resize" and spec["batch_size"] == 4  # file wins over defaults
    spec = dry_run(
        spl_offline, "--config", config, "--batch-size", "16", "--no-progress-bars",
        "--output", "s3://b/out", "--storage-option", "anon=true",
    )  # fmt: skip
    assert spec["batch_size"] == 16 and spec["progress_bars"] is False
    assert spec["output"] == "s3://b/out"
    assert spec["strategy"] == "resize"  # not given on the command line: the file's value stays
    assert spec["storage_options"] == {"endpoint_url": "http://x:1", "anon": True}


def test_dash_keys_in_yaml_and_env_style_flags(spl_offline, tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("images: /data/in\noutput: /data/out\nmask-template: logo.png\n")
    spec = dry_run(spl_offline, "--config", str(path), "--mask-anchor", "bottom-right")
    assert spec["mask_template"] == "logo.png" and spec["mask_anchor"] == "bottom-right"


def test_bad_value_in_file_names_field_and_allowed_values(spl_offline, tmp_path: Path) -> None:
    config = write_spec(tmp_path, images="/in", masks="/m", output="/out", engine="lama")
    result = spl_offline("restore", "--config", config)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "engine" in line and "spl, opencv-telea, opencv-ns" in line and "lama" in line


def test_bad_flag_value_names_allowed_values(spl_offline) -> None:
    result = spl_offline("restore", "--images", "/in", "--output", "/o", "--strategy", "tile")
    assert result.exit_code == 2
    assert "'crop'" in result.stderr and "'resize'" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_key_and_missing_required(spl_offline, tmp_path: Path) -> None:
    config = write_spec(tmp_path, images="/in", output="/out", batchsize=4)
    result = spl_offline("restore", "--config", config)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "batchsize" in line and "batch_size" in line
    result = spl_offline("restore", "--images", "/in")
    assert result.exit_code == 2 and "`output` is required" in one_line_error(result)


def test_cross_field_errors_fail_before_any_work(spl_offline, tmp_path: Path) -> None:
    result = spl_offline(
        "restore", "--images", "/nonexistent/in", "--masks", "/m", "--mask-template", "t.png",
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "masks" in one_line_error(result) and "mask_template" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unreadable_config_is_one_clean_line(spl_offline, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("images: [unclosed\n")
    result = spl_offline("restore", "--config", str(bad))
    assert result.exit_code == 2 and "cannot read" in one_line_error(result)
    result = spl_offline("restore", "--config", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2


def test_storage_options_parse_types_and_nesting() -> None:
    options = parse_storage_options(
        ["endpoint_url=http://h:8333", "anon=false", "client_kwargs.region_name=eu-west-1",
         "config_kwargs.retries.max_attempts=7", "secret=0123", "port=0123", "ratio=0.5"]
    )  # fmt: skip
    assert options == {
        "endpoint_url": "http://h:8333",
        "anon": False,
        "client_kwargs": {"region_name": "eu-west-1"},
        "config_kwargs": {"retries": {"max_attempts": 7}},
        "secret": "0123",
        "port": "0123",
        "ratio": 0.5,
    }


def test_dry_run_never_prints_credentials(spl_offline) -> None:
    result = spl_offline(
        "restore", "--images", "s3://a/in", "--masks", "s3://a/m", "--output", "s3://a/out",
        "--storage-option", "key=AKIAEXAMPLE", "--storage-option", "secret=hunter2", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0
    assert "hunter2" not in result.output and "AKIAEXAMPLE" not in result.output


def test_restore_refuses_a_dashboard_url(spl_offline, tmp_path: Path) -> None:
    args = ["restore", "--images", "/in", "--masks", "/m", "--output", str(tmp_path / "o")]
    result = spl_offline(*args, env={"RAY_ADDRESS": "http://head:8265"})
    assert (
        result.exit_code == 2 and "RAY_ADDRESS http://head:8265 is a dashboard URL" in result.stderr
    )
    result = spl_offline(*args, "--address", "http://head:8265")
    assert result.exit_code == 2 and "--address http://head:8265" in result.stderr
    assert not (tmp_path / "o").exists()
