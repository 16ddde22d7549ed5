"""Checkpoints: every accepted layout loads, wrong files fail clearly, nothing ever executes."""

from __future__ import annotations

import hashlib
import pickle

import fsspec
import pytest
import torch

from spl_model import CheckpointError, load_generator, save_generator
from spl_model.checkpoint import file_sha256


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_official_layout_loads_and_ignores_discriminator_teacher_and_loss_keys(
    official_checkpoint, small_model
):
    model = load_generator(official_checkpoint)
    assert same_weights(model, small_model)
    assert not model.training
    info = model.spl_info
    assert info["format"] == "official"
    assert info["config"] == small_model.config.to_dict()  # read off the weights' shapes
    assert info["model_id"] == hashlib.sha256(official_checkpoint.read_bytes()).hexdigest()


@pytest.mark.parametrize("prefix", ["", "module.", "module.module."])
def test_bare_state_dicts_load_with_or_without_module_prefix(tmp_path, small_model, prefix):
    path = tmp_path / "bare.pt"
    torch.save({prefix + k: v for k, v in small_model.state_dict().items()}, path)
    model = load_generator(str(path))
    assert same_weights(model, small_model)
    assert model.spl_info["format"] == "bare"


def test_native_safetensors_round_trip_keeps_weights_config_and_provenance(tmp_path, small_model):
    path = tmp_path / "native.safetensors"
    sha = save_generator(small_model, path, teacher="efficientnet-lite0@stride8", step=12)
    model = load_generator(path)
    assert same_weights(model, small_model)
    assert model.spl_info["format"] == "native"
    assert model.spl_info["model_id"] == sha == file_sha256(path)
    assert model.spl_info["metadata"]["teacher"] == "efficientnet-lite0@stride8"
    assert model.spl_info["metadata"]["step"] == 12
    with open(path, "rb") as f:
        assert b"pickle" not in f.read(64)  # the native format carries no pickle at all


def test_missing_and_unexpected_keys_are_named(tmp_path, small_model):
    state = dict(small_model.state_dict())
    del state["decoder.9.bias"]
    state["decoder.10.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "broken.pt")
    message = str(err.value)
    assert "missing 1 keys: decoder.9.bias" in message
    assert "unexpected 1 keys: decoder.10.weight" in message
    assert "'width': 32" in message  # the config it expected


def test_an_explicit_config_that_does_not_fit_reports_shape_mismatches(official_checkpoint):
    with pytest.raises(CheckpointError, match=r"shape mismatches: encoder_conv1\.weight"):
        load_generator(official_checkpoint, config="spl")


def test_a_state_dict_of_another_network_is_refused(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"missing 418 keys.*unexpected 1 keys: fc.weight"):
        load_generator(tmp_path / "other.pt")


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil.pth"  # torch's zip container, as torch.save writes it
    torch.save({"encoder_conv1.weight": _Payload(str(marker))}, zipped)
    with pytest.raises(CheckpointError, match=r"references Python code \(io.open\).*never allowed"):
        load_generator(zipped)
    raw = tmp_path / "evil.pkl"  # a bare pickle stream
    with open(raw, "wb") as f:
        pickle.dump({"encoder_conv1.weight": _Payload(str(marker))}, f)
    with pytest.raises(CheckpointError):
        load_generator(raw)
    assert not marker.exists()


def test_garbage_and_missing_files_fail_with_a_clear_error(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_generator(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_generator(tmp_path / "nope.pth")


def test_remote_urls_are_fetched_once_into_a_content_addressed_cache(
    tmp_path, monkeypatch, official_checkpoint, small_model
):
    monkeypatch.setenv("SPL_CACHE_DIR", str(tmp_path / "cache"))
    url = "memory://models/spl.pth"
    with fsspec.open(url, "wb") as f:
        f.write(official_checkpoint.read_bytes())
    first = load_generator(url)
    sha = first.spl_info["model_id"]
    assert (tmp_path / "cache" / "blobs" / sha).is_file()
    assert same_weights(first, small_model)
    # A second load reuses the cached blob: drop the remote bytes' reader to prove it.
    fs = fsspec.filesystem("memory")
    monkeypatch.setattr(fs, "open", lambda *a, **k: pytest.fail("downloaded twice"))
    assert load_generator(url).spl_info["model_id"] == sha
    with pytest.raises(CheckpointError, match=r"cannot fetch checkpoint memory://models/gone\.pth"):
        load_generator("memory://models/gone.pth")
