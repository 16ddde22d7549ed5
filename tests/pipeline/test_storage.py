"""Storage helpers: keys that cannot escape OUT, atomic writes, retries of transient errors."""

from __future__ import annotations

import pytest

from pipeline.config import RestoreConfig
from pipeline.storage import (
    UnsafeKeyError,
    atomic_write,
    filesystem,
    join_under,
    sanitize_key,
    with_retries,
)


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("a/b/photo", "a/b/photo"),
        ("../../etc/passwd", "__/__/etc/passwd"),
        ("/abs/path/x", "abs/path/x"),
        ("C:\\Users\\me\\x", "Users/me/x"),
        ("a\\..\\..\\b", "a/__/__/b"),
        ("a//./b/", "a/b"),
        ("tab\there", "tab_here"),
    ],
)
def test_keys_are_neutralised(raw, safe):
    assert sanitize_key(raw) == safe
    assert join_under("bucket/out/images", sanitize_key(raw)).startswith("bucket/out/images/")


@pytest.mark.parametrize("raw", ["", "/", "./.", "x/" + "y" * 300])
def test_unusable_keys_are_refused(raw):
    with pytest.raises(UnsafeKeyError):
        sanitize_key(raw)


def test_join_under_accepts_roots_written_with_dots_or_double_slashes():
    assert join_under("/tmp/../out/images", "a/b.png") == "/out/images/a/b.png"
    assert join_under("bucket/x//images", "k.png") == "bucket/x/images/k.png"


def test_join_under_refuses_escapes():
    for bad in ("../x", "/etc/x", "a/../../x"):
        with pytest.raises(UnsafeKeyError):
            join_under("/out/images", bad)


def test_local_atomic_write_leaves_no_temp_files(tmp_path):
    fs, root = filesystem(str(tmp_path))
    atomic_write(fs, f"{root}/deep/dir/file.bin", b"1234")
    atomic_write(fs, f"{root}/deep/dir/file.bin", b"5678")  # replace in place
    assert (tmp_path / "deep/dir/file.bin").read_bytes() == b"5678"
    assert [p.name for p in (tmp_path / "deep/dir").iterdir()] == ["file.bin"]


def test_s3_atomic_write_and_options(seaweedfs, s3_prefix):
    fs, path = filesystem(s3_prefix, seaweedfs.storage_options)
    retries = fs.config_kwargs["retries"]  # our default policy; botocore rewrites the dict in
    # place to total_max_attempts (= max_attempts + 1) once a client of this instance exists
    assert retries.get("max_attempts", retries.get("total_max_attempts", 0) - 1) == 5
    atomic_write(fs, f"{path}/x/y.bin", b"payload")
    assert seaweedfs.filesystem().cat_file(f"{path}/x/y.bin") == b"payload"


def test_transient_errors_are_retried_and_permanent_ones_are_not():
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise OSError("SlowDown: please reduce your request rate")
        return "done"

    assert with_retries(flaky, "flaky", attempts=5, base_delay_s=0.001) == "done"
    assert calls["n"] == 3

    def missing():
        calls["n"] += 1
        raise FileNotFoundError("nope")

    calls["n"] = 0
    with pytest.raises(FileNotFoundError):
        with_retries(missing, "missing", attempts=5, base_delay_s=0.001)
    assert calls["n"] == 1


def test_io_timeout_reaches_s3_clients_but_not_the_users_options():
    config = RestoreConfig.from_dict(
        {"images": "s3://b/in", "output": "s3://b/out", "masks": "s3://b/m", "io_timeout_s": 7,
         "storage_options": {"anon": True}}
    )  # fmt: skip
    fs, _ = filesystem("s3://b/x", config.io_options, config.io_retries)
    assert fs.config_kwargs["connect_timeout"] == fs.config_kwargs["read_timeout"] == 7.0
    assert config.storage_options == {"anon": True}
    assert all(not k.startswith("_spl") for k in fs.storage_options)
