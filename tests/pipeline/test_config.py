"""The job config: one object, validated once, errors that name the field and the choices."""

from __future__ import annotations

import json

import pytest

from pipeline.config import ConfigError, RestoreConfig

BASE = {"images": "s3://b/in", "masks": "s3://b/masks", "output": "s3://b/out"}


def make(**extra) -> RestoreConfig:
    return RestoreConfig.from_dict({**BASE, **extra})


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"strategy": "tile"}, ["strategy", "crop", "resize"]),
        ({"engine": "lama"}, ["engine", "spl", "opencv-telea", "opencv-ns"]),
        ({"format": "zip"}, ["format", "pairs", "webdataset", "parquet"]),
        ({"precision": "int8"}, ["precision", "fp32", "bf16", "fp16"]),
        ({"device": "tpu"}, ["device", "auto", "cpu", "cuda"]),
        ({"actors": "4:2"}, ["actors", "MIN"]),
        ({"actors": "many"}, ["actors", "MIN:MAX"]),
        ({"batch_size": 0}, ["batch_size", ">= 1"]),
        ({"dilate": "wide"}, ["dilate", "integer"]),
        ({"output_quality": 101}, ["output_quality", "between 1 and 100"]),
        ({"mask_anchor": "middle"}, ["mask_anchor", "bottom-right"]),
        ({"mask_offset": "1,2,3"}, ["mask_offset", "X,Y"]),
        ({"bogus_key": 1}, ["bogus_key", "allowed keys"]),
        ({"run_id": "../x"}, ["run_id"]),
        ({"engine": "opencv-ns", "checkpoint": "w.pth"}, ["checkpoint", "opencv-ns"]),
        ({"retry_failed": True, "overwrite": True}, ["retry_failed", "overwrite"]),
        ({"mask_template": "t.png"}, ["masks", "mask_template"]),
        ({"mask_alpha": "alpha.png"}, ["mask_alpha", "mask_template"]),
        ({"mark_color": "red"}, ["mark_color", "white", "black"]),
        ({"compile": "yes"}, ["compile", "true, false or auto"]),
    ],
)
def test_bad_values_name_the_field_and_the_choices(extra, names):
    with pytest.raises(ConfigError) as info:
        make(**extra)
    for name in names:
        assert name in str(info.value)


def test_required_keys_and_pairs_need_masks():
    with pytest.raises(ConfigError, match="`output` is required"):
        RestoreConfig.from_dict({"images": "x"})
    with pytest.raises(ConfigError, match=r"pairs.*masks"):
        RestoreConfig.from_dict({"images": "x", "output": "y", "format": "pairs"})


def test_yaml_values_are_coerced_and_overrides_win(tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "images: /data/in\nmask-template: /data/wm.png\noutput: /data/out\n"
        "batch_size: '4'\nactors: 2:6\nmask_offset: 2%,10\nmask_anchor: bottom-right\n"
    )
    config = RestoreConfig.from_yaml(spec, {"batch_size": 16, "dilate": "3"})
    assert config.batch_size == 16 and config.dilate == 3
    assert config.mask_template == "/data/wm.png"
    assert config.actor_range() == (2, 6)
    assert config.mask_offset == ("2%", "10")
    assert make(actors=3).actor_range() == (3, 3)
    assert make().actor_range() is None  # sized from the cluster
    assert make(compile="auto").compile is None and make(compile=False).compile is False


def test_redacted_config_hides_credentials():
    config = make(
        storage_options={
            "key": "AKIAEXAMPLE",
            "secret": "s3cr3t",
            "token": "tok",
            "endpoint_url": "http://127.0.0.1:9000",
            "client_kwargs": {"aws_secret_access_key": "nested"},
        },
        checkpoint="https://user:pass@example.com/w.pth",
    )
    text = json.dumps(config.redacted())
    for secret in ("AKIAEXAMPLE", "s3cr3t", 'tok"', "nested", "user:pass"):
        assert secret not in text
    assert "http://127.0.0.1:9000" in text  # not a secret: kept for the record


def test_settings_id_tracks_what_changes_outputs_only():
    base = make()
    sid = base.settings_id("abc", "spl")
    assert make(batch_size=2, actors="3", compile=True).settings_id("abc", "spl") == sid
    assert make(dilate=4).settings_id("abc", "spl") != sid
    assert make(output_format="webp").settings_id("abc", "spl") != sid
    assert base.settings_id("def", "spl") != sid


def test_the_output_location_has_one_spelling_for_every_write():
    local = RestoreConfig.from_dict({"images": "in", "mask_template": "m.png",
                                     "output": "./runs//a/../out/"})  # fmt: skip
    assert local.output == "runs/out"
    ok = RestoreConfig.from_dict({"images": "in", "mask_template": "m.png",
                                  "output": "s3://bucket/restored/"})  # fmt: skip
    assert ok.output == "s3://bucket/restored"
    for bad in ("s3://b/a/../out", "s3://b//out", "s3://b/./out"):
        with pytest.raises(ConfigError, match="`output`"):
            RestoreConfig.from_dict({"images": "in", "mask_template": "m.png", "output": bad})


def test_template_placement_counts_however_the_template_arrives():
    def sid(**extra) -> str:
        spec = {"images": "in", "output": "out", "masks": "m.png", **extra}
        config = RestoreConfig.from_dict(spec)
        return config.settings_id("abc", "spl", template_url="m.png")

    assert sid(mask_anchor="top-left") != sid(mask_anchor="bottom-right")
    assert sid(mask_offset="4,4") != sid(mask_offset="8,8")

