"""Checkpoint files: atomic save, safe load, the digest (rsb.run.checkpoint); checked state-dict loading
(rsb.models)."""
from __future__ import annotations

import os

import pytest
import torch

from rsb.run.checkpoint import load, save_atomic
from rsb.config.schema import ModelConfig
from rsb.errors import UserError
from rsb.models.factory import create_model, load_state_dict_checked, unwrap


def sample_ckpt(step=3):
    torch.manual_seed(step)
    return {"model": {"w": torch.randn(4, 3), "b": torch.zeros(4)}, "epoch": 1, "step": step,
            "config": {"optim": {"lr": 5e-3}, "name": "a2"}}


def test_round_trip(tmp_path):
    p = tmp_path / "last.pt"
    obj = sample_ckpt()
    save_atomic(obj, p)
    got = load(p)
    assert got["epoch"] == 1 and got["step"] == 3 and got["config"] == obj["config"]
    assert torch.equal(got["model"]["w"], obj["model"]["w"])
    assert not [f for f in os.listdir(tmp_path) if f != "last.pt"]


def test_overwrite(tmp_path):
    p = tmp_path / "last.pt"
    save_atomic(sample_ckpt(1), p)
    save_atomic(sample_ckpt(2), p)
    assert load(p)["step"] == 2
    assert os.listdir(tmp_path) == ["last.pt"]


def test_load_accepts_str_path(tmp_path):
    p = tmp_path / "c.pt"
    save_atomic(sample_ckpt(), p)
    assert load(str(p))["step"] == 3


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load(tmp_path / "nope.pt")


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Custom:
    def __init__(self):
        self.x = 1


def test_pickled_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Evil(marker)}, p)
    assert not marker.exists()
    with pytest.raises(UserError) as e:
        load(p)
    assert str(p) in str(e.value)
    assert not marker.exists()


def test_custom_class_refused(tmp_path):
    p = tmp_path / "custom.pt"
    torch.save({"model": {}, "obj": Custom()}, p)
    with pytest.raises(UserError):
        load(p)


def test_truncated_file(tmp_path):
    p = tmp_path / "last.pt"
    save_atomic(sample_ckpt(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as e:
        load(p)
    assert str(p) in str(e.value)


def test_garbage_file(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="x.pt"):
        load(p)


@pytest.mark.parametrize("obj", [{"state": {}}, [1, 2, 3], torch.zeros(2)])
def test_without_model_entry(tmp_path, obj):
    p = tmp_path / "c.pt"
    torch.save(obj, p)
    with pytest.raises(UserError, match="model"):
        load(p)


def test_failure_mid_write_keeps_previous(tmp_path, monkeypatch):
    p = tmp_path / "last.pt"
    save_atomic(sample_ckpt(1), p)
    before = p.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial bytes")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(UserError, match="could not write checkpoint .*disk full"):
        save_atomic(sample_ckpt(2), p)
    monkeypatch.setattr(torch, "save", real_save)
    assert p.read_bytes() == before
    assert load(p)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"], "temporary file left behind"


def test_failure_on_first_write_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(obj, f, *a, **k):
        f.write(b"xx")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic(sample_ckpt(), tmp_path / "best.pt")
    assert os.listdir(tmp_path) == []


def test_saving_again_keeps_the_previous_as_prev(tmp_path):
    first, second = sample_ckpt(), {**sample_ckpt(), "epoch": 2}
    save_atomic(first, tmp_path / "last.pt", keep_previous=True)
    save_atomic(second, tmp_path / "last.pt", keep_previous=True)
    assert load(tmp_path / "last.pt")["epoch"] == 2 and load(tmp_path / "prev.pt")["epoch"] == 1


def test_flipped_byte_is_caught_by_the_digest(tmp_path):
    p = tmp_path / "c.pt"
    ckpt = {"model": {"w": torch.zeros(4096)}, "epoch": 1}
    save_atomic(ckpt, p)
    data = bytearray(p.read_bytes())
    pos = data.find(b"\x00" * 4096)  # inside the tensor's bytes (torch.load alone does not notice a flip)
    assert pos > 0
    data[pos + 100] ^= 0x40
    p.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt"):
        load(p)


def test_full_disk_during_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    import errno
    save_atomic(sample_ckpt(), tmp_path / "last.pt", keep_previous=True)
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError, match="No space left on device.*free disk space"):
        save_atomic({**sample_ckpt(), "epoch": 9}, tmp_path / "last.pt", keep_previous=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert load(tmp_path / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.fixture(scope="module")
def resnet18_state():
    return create_model(ModelConfig(name="resnet18", num_classes=10)).state_dict()


def test_load_state_dict_checked_ok(resnet18_state):
    model = create_model(ModelConfig(name="resnet18", num_classes=10))
    load_state_dict_checked(model, resnet18_state, "ckpt.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(v, resnet18_state[k])


def test_load_state_dict_checked_other_architecture(resnet18_state):
    model = create_model(ModelConfig(name="resnet50", num_classes=10))
    with pytest.raises(UserError) as e:
        load_state_dict_checked(model, resnet18_state, "r18.pt")
    assert "r18.pt" in str(e.value)


def test_load_state_dict_checked_num_classes(resnet18_state):
    model = create_model(ModelConfig(name="resnet18", num_classes=5))
    with pytest.raises(UserError) as e:
        load_state_dict_checked(model, resnet18_state, "r18.pt")
    assert "fc." in str(e.value) and "shape" in str(e.value)


def test_unknown_model_name():
    with pytest.raises(UserError, match="not_a_model"):
        create_model(ModelConfig(name="not_a_model_xyz"))


def test_create_model_settings():
    m = create_model(ModelConfig(name="resnet18", num_classes=7, drop_rate=0.25, drop_path_rate=0.1))
    assert m.num_classes == 7 and m.fc.out_features == 7
    assert m.drop_rate == 0.25
    assert unwrap(m) is m


def test_unwrap_nested():
    inner = torch.nn.Linear(2, 2)

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.module = m

    class Compiled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

    assert unwrap(Wrap(Compiled(inner))) is inner
