"""The one atomic-write helper, the cache root and the run folder's names (rsb.run.folder)."""
from __future__ import annotations

import json

import pytest

from rsb.run import folder as run_folder


def test_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "summary.json"
    run_folder.write_json(p, {"a": 1})
    run_folder.write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["summary.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text("old\n")
    with pytest.raises(RuntimeError):
        with run_folder.atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "old\n" and sorted(x.name for x in tmp_path.iterdir()) == ["metrics.csv"]


def test_every_temporary_is_one_the_start_up_clean_up_removes(tmp_path):
    """metrics.csv's and summary.json's temporaries used to be named *.tmp, which the clean-up glob missed."""
    for name in ("metrics.csv", "summary.json", "last.pt", "index.npz"):
        stale = run_folder.temporary_for(tmp_path / name)
        stale.write_text("left by a killed write")
    (tmp_path / "keep.txt").write_text("x")
    run_folder.remove_stale_temporaries(tmp_path)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.txt"]


def test_cache_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "c"))
    assert run_folder.cache_root() == tmp_path / "c"
    monkeypatch.delenv("RSB_CACHE")
    assert run_folder.cache_root().parts[-2:] == (".cache", "rsb")


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with run_folder.atomic_folder(target) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed while writing")
    assert not target.exists() and not list(tmp_path.iterdir())  # nothing half-written, no temporary left
    target.mkdir()
    (target / "stale").write_text("old")
    with run_folder.atomic_folder(target) as tmp:
        (tmp / "new").write_text("x")
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    # Another process completed the folder meanwhile: its copy is kept, ours dropped.
    with run_folder.atomic_folder(target, complete=lambda f: (f / "new").exists()) as tmp:
        (tmp / "mine").write_text("x")
    assert sorted(p.name for p in target.iterdir()) == ["new"] and len(list(tmp_path.iterdir())) == 1
