"""ImageNet-V2 and ReaL rules on tiny synthetic data: V2 labels and layout checks, archive verification and
caching, ReaL matching and scoring with a hand-computed answer, the scoring loop's OOM fallback and DDP shares."""
from __future__ import annotations

import io
import json
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from rsb.errors import UserError
from rsb.evaluation import archive, imagenet_v2, real_labels, scoring, sets
from rsb.evaluation.checkpoints import EvalSettings
from rsb.run import folder as run_folder


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))  # index and archive caches stay in the test


def _jpeg(value=128, size=8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (value, value, value)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def v2_tree(root, classes, per_class=1, names=None):
    """A V2-layout tree: folders str(c) (or `names`), per_class tiny JPEGs named like V2's <40 hex>.jpeg."""
    data = _jpeg()
    for c, name in enumerate(names or [str(i) for i in range(classes)]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{c:020x}{i:020x}.jpeg").write_bytes(data)
    return root


# ---- labels -----------------------------------------------------------------------------------------------------

def test_v2_labels_are_int_folder_name_and_the_string_sort_trap_is_caught(tmp_path):
    root = v2_tree(tmp_path / "data" / "imagenetv2-matched-frequency-format-val", 1000)
    v2 = imagenet_v2.load_v2(root, num_classes=1000, per_class=1)
    folders = np.array([int(v2.index.path(i).parent.name) for i in range(len(v2.index))])
    assert len(folders) == 1000
    assert (v2.labels == folders).all()  # label == int(folder) for every class
    # torchvision's ImageFolder rule (position in string-sorted folder names) is wrong for 988 classes.
    string_sorted = v2.index.labels
    assert v2.index.classes[:4] == ["0", "1", "10", "100"]
    assert int((string_sorted != folders).sum()) == 988
    assert int((v2.labels != folders).sum()) == 0
    # The parent of imagenetv2-*-format-val is accepted too, and names the variant.
    s = sets.v2_set(tmp_path / "data", 1000, per_class=1)
    assert s.name == "matched-frequency" and (s.labels == v2.labels).all()


def test_v2_per_class_count_comes_from_the_sample_marker(tmp_path):
    root = v2_tree(tmp_path / "sample" / "v2", 10, per_class=2)
    (tmp_path / "sample" / "COMPLETE.json").write_text(json.dumps({"splits": {"train": 8, "val": 4, "v2": 2}}))
    assert imagenet_v2.expected_per_class(root) == 2
    assert imagenet_v2.expected_per_class(tmp_path / "other") == imagenet_v2.IMAGES_PER_CLASS == 10
    assert len(imagenet_v2.load_v2(root, 10).index) == 20


# ---- layout errors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, expected", [
    ("missing", "is missing 2 of the 12 class folders 0..11 (missing: 3, 11)"),
    ("wnid", "WordNet-id class folders (n01440764, n01440765, n01440766, ...), the ImageNet layout"),
    ("non_numeric", "2 folder(s) not named by a class index ('007', 'cat')"),
    ("too_many", "has 14 class folders up to 13, but the model has 12 classes (folders 12, 13 are out of range)"),
    ("wrong_count", "2 class folder(s) without exactly 1 images ('4' has 2, '9' has 0); found 12 images in all, "
                    "expected 12"),
    ("empty", "has no class folders; expected folders 0..11"),
])
def test_v2_layout_errors_say_what_was_found(tmp_path, case, expected):
    root = tmp_path / "v2"
    names = [str(i) for i in range(12)]
    if case == "missing":
        names = [n for n in names if n not in ("3", "11")]
    elif case == "wnid":
        names = [f"n{1440764 + i:08d}" for i in range(12)]
    elif case == "non_numeric":
        names[7], names[5] = "007", "cat"
    elif case == "too_many":
        names += ["12", "13"]
    if case == "empty":
        root.mkdir()
    else:
        v2_tree(root, len(names), names=names)
    if case == "wrong_count":
        shutil.move(next((root / "9").iterdir()), root / "4" / ("f" * 40 + ".jpeg"))
    with pytest.raises(UserError) as e:
        imagenet_v2.load_v2(root, num_classes=12, per_class=1)
    assert expected in str(e.value), str(e.value)
    assert str(root) in str(e.value)


def test_v2_missing_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sets.v2_set(tmp_path / "nope", 10)


# ---- archives ---------------------------------------------------------------------------------------------------

def _tiny_archive(tmp_path):
    src = v2_tree(tmp_path / "src" / "imagenetv2-matched-frequency-format-val", 3)
    path = tmp_path / "imagenetv2-matched-frequency.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return path


def test_archive_with_unknown_sha256_is_rejected(tmp_path):
    path = _tiny_archive(tmp_path)
    with pytest.raises(UserError) as e:
        sets.v2_set(path, 3, per_class=1)
    msg = str(e.value)
    assert run_folder.file_digest(path, "sha256") in msg
    assert all(v in msg for v in ("matched-frequency", "threshold0.7", "top-images"))
    assert not (tmp_path / "cache" / "imagenetv2").exists()  # nothing extracted


def test_published_hashes_are_the_recipes_values():
    assert archive.KNOWN_ARCHIVES["f0c37fdf925916b19ea1323cd9a2208cdb6959ba2c32eef2a7fc393835c9ca7c"] == \
        "matched-frequency"
    assert sorted(archive.KNOWN_ARCHIVES.values()) == ["matched-frequency", "threshold0.7", "top-images"]


def test_known_archive_is_extracted_once_into_the_cache_and_reused(tmp_path, monkeypatch):
    path = _tiny_archive(tmp_path)
    digest = run_folder.file_digest(path, "sha256")
    monkeypatch.setattr(archive, "KNOWN_ARCHIVES", {digest: "matched-frequency"})
    s = sets.v2_set(path, 3, per_class=1)
    cache = tmp_path / "cache" / "imagenetv2"
    assert [p.name for p in cache.iterdir()] == [f"matched-frequency-{digest[:16]}"]  # no temporary left
    assert s.index.root == cache / f"matched-frequency-{digest[:16]}" / "imagenetv2-matched-frequency-format-val"
    assert s.name == "matched-frequency" and list(s.labels) == [0, 1, 2]

    def no_second_extraction(*a, **k):
        raise AssertionError("the archive was extracted again")
    monkeypatch.setattr(tarfile, "open", no_second_extraction)
    again = sets.v2_set(path, 3, per_class=1)
    assert again.index.root == s.index.root


# ---- ReaL -------------------------------------------------------------------------------------------------------

# Six val images in six class folders; folder order is not file-number order.
FOLDER_OF_NUMBER = {4: 0, 6: 1, 1: 2, 2: 3, 5: 4, 3: 5}          # file number -> class folder (= true label)
REAL = [[2], [3, 0], [], [1], [4, 5], [0]]                     # entry k is file number k + 1; #3 is left out
RANKING = {1: [2, 0, 1, 3, 4, 5], 2: [0, 1, 2, 4, 5, 3], 3: [5, 0, 1, 2, 3, 4],
           4: [0, 1, 2, 3, 4, 5], 5: [1, 2, 3, 0, 4, 5], 6: [3, 1, 2, 4, 5, 0]}  # the model's classes, best first
# By hand. ReaL (5 images scored): top-1 right for #1 (2 in [2]) and #2 (0 in [3, 0]) -> 2/5 = 40%;
# top-5 also for #4 (1 is 2nd) and #5 (4 is 5th), not #6 (0 is 6th) -> 4/5 = 80%.
# Original labels: top-1 right for #1 (2), #3 (5), #4 (0) -> 3/6 = 50%; top-5 misses only #2 (3 is 6th) -> 5/6.


class GrayDecoder(torch.nn.Module):
    """Reads the file number back from the image's gray level (40 * number) and returns RANKING's logits."""

    def __init__(self):
        super().__init__()
        table = torch.zeros(7, 6)
        for k, order in RANKING.items():
            for pos, c in enumerate(order):
                table[k, c] = 6 - pos
        self.register_buffer("table", table)

    def forward(self, x):
        gray = x[:, 0].float().mean(dim=(1, 2)) * (0.229 * 255) + 0.485 * 255
        return self.table[(gray / 40).round().long().clamp(0, 6)]


def _real_val(tmp_path, name="imagenet"):
    root = tmp_path / name
    for number, label in FOLDER_OF_NUMBER.items():
        folder = root / "val" / f"n0000000{label}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"ILSVRC2012_val_{number:08d}.JPEG").write_bytes(_jpeg(40 * number, 16))
    real = tmp_path / f"{name}-real.json"
    real.write_text(json.dumps(REAL))
    return root, real


def test_real_scoring_matches_the_hand_computed_answer(tmp_path):
    root, real = _real_val(tmp_path)
    s = sets.val_set(root, 6, real)
    assert s.real[:, 0].tolist() == [REAL[n - 1][0] if REAL[n - 1] else -1
                                     for n in (4, 6, 1, 2, 5, 3)]  # index order = folder order
    res = scoring.score_set(GrayDecoder(), s, EvalSettings(16, 1.0, "bilinear"), device=torch.device("cpu"),
                            batch_size=4, workers=0, progress=False)
    assert res["real_images"] == 5 and res["images"] == 6
    assert res["real_top1"] == pytest.approx(40.0) and res["real_top5"] == pytest.approx(80.0)
    assert res["top1"] == pytest.approx(50.0) and res["top5"] == pytest.approx(500 / 6)


def test_real_hits_unit():
    top5 = torch.tensor([[1, 2, 3, 4, 5], [7, 8, 9, 1, 2], [0, 1, 2, 3, 4]])
    targets = torch.tensor([[1, -1], [2, 3], [-1, -1]])
    h1, h5, scored = real_labels.real_hits(top5, targets)
    assert h1.tolist() == [True, False, False] and h5.tolist() == [True, True, False]
    assert scored.tolist() == [True, True, False]


def test_real_json_must_match_the_val_set(tmp_path):
    # A fresh tree per case: the folder index is cached by modification time, which is coarse on some disks.
    root, real = _real_val(tmp_path, "count")
    real.write_text(json.dumps(REAL + [[1]]))
    with pytest.raises(UserError, match="has 7 label lists but the val set .* has 6 images"):
        sets.val_set(root, 6, real)
    root, real = _real_val(tmp_path, "name")
    victim = root / "val" / "n00000000" / "ILSVRC2012_val_00000004.JPEG"
    victim.rename(victim.with_name("photo_4.JPEG"))
    with pytest.raises(UserError, match="photo_4.JPEG is not named ILSVRC2012_val_%08d.JPEG"):
        sets.val_set(root, 6, real)
    root, real = _real_val(tmp_path, "number")
    victim = root / "val" / "n00000000" / "ILSVRC2012_val_00000004.JPEG"
    victim.rename(victim.with_name("ILSVRC2012_val_00000009.JPEG"))
    with pytest.raises(UserError, match="number 9 .* is beyond the 6 entries"):
        sets.val_set(root, 6, real)
    real.write_text(json.dumps([[0], [99]] + REAL[2:]))
    with pytest.raises(UserError, match="not a list of label lists with class indices 0..5"):
        sets.val_set(root, 6, real)


# ---- the scoring loop -------------------------------------------------------------------------------------------

class OomAbove(torch.nn.Module):
    """Raises CUDA's out-of-memory error for batches above `limit`, as a GPU would; else a fixed guess (class 0) over 7 classes."""

    def __init__(self, limit):
        super().__init__()
        self.limit, self.batches = limit, []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.zeros(x.shape[0], 7).index_fill_(1, torch.tensor([0]), 1.0)


def test_out_of_memory_halves_the_batch_and_scores_everything_once(tmp_path):
    s = sets.v2_set(v2_tree(tmp_path / "v2", 3, per_class=5), 3, per_class=5)
    model, logs = OomAbove(4), []
    res = scoring.score_set(model, s, EvalSettings(8, 1.0, "bilinear"), device=torch.device("cpu"),
                            batch_size=16, workers=0, progress=False, log=logs.append)
    assert res["batch_size"] == 4 and res["images"] == 15
    assert res["top1"] == pytest.approx(100 / 3)  # always class 0: right for the 5 images of folder "0"
    assert logs == ["warning: out of memory on v2; scoring it again at batch size 8",
                    "warning: out of memory on v2; scoring it again at batch size 4"]
    assert model.batches[:2] == [15, 8] and sum(model.batches[2:]) == 15


def test_process_shares_cover_the_set_once_without_padding(tmp_path):
    s = sets.v2_set(v2_tree(tmp_path / "v2", 7, per_class=1), 7, per_class=1)  # 7 images over 3 processes
    shares = [scoring.score_set(OomAbove(99), s, EvalSettings(8, 1.0, "bilinear"), device=torch.device("cpu"),
                                batch_size=2, workers=0, rank=r, world=3, progress=False)["images"]
              for r in range(3)]
    assert shares == [3, 3, 1]


def test_progress_lines_in_logs(capsys):
    import sys
    bar = scoring.EvalProgress(True, "v2", 20, stream=sys.stdout)
    for _ in range(10):
        bar.update(2)
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and lines[0].startswith("v2: 2/20 images,") and lines[-1].startswith("v2: 18/20")
