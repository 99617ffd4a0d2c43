"""A run folder's checkpoints: names, retention, the mid-epoch rule and the resume order
(rsb.run.checkpoint_manager)."""
from __future__ import annotations

import pytest
import torch

from rsb.errors import UserError
from rsb.run import checkpoint_manager
from rsb.run.checkpoint import load, save_atomic
from rsb.run.checkpoint_manager import CheckpointManager, find_resume
from rsb.run.record import CheckpointRecord


def record(epoch=1, step=3) -> CheckpointRecord:
    torch.manual_seed(step)
    return CheckpointRecord(model={"w": torch.randn(4, 3), "b": torch.zeros(4)}, optimizer={}, epoch=epoch,
                            epoch_step=0, step=step, config={"optim": {"lr": 5e-3}, "name": "a2"})


def test_find_resume(tmp_path):
    assert find_resume(tmp_path) is None
    save_atomic(record().to_dict(), tmp_path / "last.pt")
    found = find_resume(tmp_path)
    assert found.path == tmp_path / "last.pt" and found.epoch == 1 and found.step == 3


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_unreadable_last_falls_back_to_prev(tmp_path, damage, capsys):
    save_atomic(record(epoch=1).to_dict(), tmp_path / "last.pt", keep_previous=True)
    save_atomic(record(epoch=2).to_dict(), tmp_path / "last.pt", keep_previous=True)
    last = tmp_path / "last.pt"
    data = bytearray(last.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        t = load(last)["model"]["w"]
        pos = bytes(data).find(t.numpy().tobytes())
        data[pos] ^= 0xFF
    last.write_bytes(bytes(data))
    found = find_resume(tmp_path)
    assert found.path == tmp_path / "prev.pt" and found.epoch == 1
    assert "last.pt" in capsys.readouterr().err


def test_no_loadable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="no checkpoint .* can be loaded"):
        find_resume(tmp_path)


def test_a_newer_format_stops_the_search_instead_of_going_back(tmp_path):
    """An older prev.pt would silently undo the work of the run that wrote last.pt in a format we cannot read."""
    save_atomic(record(epoch=1).to_dict(), tmp_path / "last.pt", keep_previous=True)
    save_atomic({**record(epoch=2).to_dict(), "format": "rsb-99"}, tmp_path / "last.pt", keep_previous=True)
    with pytest.raises(UserError, match="last.pt has format 'rsb-99'"):
        find_resume(tmp_path)


def test_manager_serialises_once_and_links_best_and_epoch_copies(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = torch.save

    def counting_save(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(torch, "save", counting_save)
    m = CheckpointManager(tmp_path, keep_epochs=2)
    for epoch in (1, 2, 3):
        m.save(record(epoch, epoch), epoch_end=True, is_best=epoch == 2)
    assert calls["n"] == 3  # one serialisation per save, however many copies
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == ["epoch_0002.pt", "epoch_0003.pt"]
    assert load(tmp_path / "best.pt")["epoch"] == 2 and load(tmp_path / "last.pt")["epoch"] == 3
    assert load(tmp_path / "prev.pt")["epoch"] == 2
    assert (tmp_path / "epoch_0003.pt").read_bytes() == (tmp_path / "last.pt").read_bytes()
    assert not list(tmp_path.glob(".*.tmp*"))


def test_manager_mid_epoch_rule_by_steps_and_time(tmp_path, monkeypatch):
    m = CheckpointManager(tmp_path, every_steps=5)
    assert [s for s in range(1, 12) if m.due(s)] == [5, 10]
    clock = {"t": 1000.0}
    monkeypatch.setattr(checkpoint_manager.time, "monotonic", lambda: clock["t"])
    m = CheckpointManager(tmp_path, every_minutes=10)
    assert not m.due(1)
    clock["t"] += 601
    assert m.due(2)
    m.save(record(epoch=0), epoch_end=False)  # a save restarts the clock
    assert not m.due(3)
    off = CheckpointManager(tmp_path / "off", enabled=False)
    off.save(None)  # a process other than rank 0 writes nothing
    assert not (tmp_path / "off").exists()
