"""RepeatedAugSampler: seeded by (seed, epoch), the repeated order dealt round-robin over world x accum virtual
replicas (lanes), so every micro-batch holds distinct images and an image's copies fall in different
micro-batches; one process accumulating 8 micro-batches sees, step by step, what 8 processes would."""
from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np
import pytest

from rsb.data.sampler import RepeatedAugSampler, lane_count, samples_per_process
from rsb.data.seeds import seed_for


def make(n, world=1, rank=0, repeats=3, seed=0, epoch=0, batch=1, accum=1, shuffle=True, start=0):
    """The sampler a run with `accum` micro-steps per process builds: given the lanes its plan computed."""
    s = RepeatedAugSampler(n, num_replicas=world, rank=rank, repeats=repeats, seed=seed, shuffle=shuffle,
                           batch_size=batch, lanes=lane_count(world, accum, repeats))
    s.set_epoch(epoch, start)
    return s


def stream(sampler) -> list[int]:
    """A process's image indices as the loader draws them: iterating the sampler gives (index, seed) pairs."""
    return [index for index, _ in sampler]


def shares(n, world, repeats=3, seed=0, epoch=0, batch=1, accum=1):
    """Each process's stream of image indices."""
    return [stream(make(n, world, r, repeats, seed, epoch, batch, accum)) for r in range(world)]


def steps(stream, batch, accum):
    """A process's stream cut as the loader (drop_last) and trainer use it: (optimizer step, micro-step, batch)."""
    a = np.asarray(stream)
    assert len(a) % (batch * accum) == 0
    return a.reshape(-1, accum, batch)


# --- lanes and counts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("world,accum,repeats,lanes", [
    (1, 1, 3, 3), (2, 1, 3, 4), (3, 1, 3, 3), (4, 1, 3, 4), (8, 1, 3, 8), (1, 8, 3, 8), (2, 4, 3, 8),
    (4, 2, 3, 8), (1, 2, 3, 4), (1, 1, 1, 1), (2, 1, 1, 2), (1, 4, 1, 4)])
def test_lane_count(world, accum, repeats, lanes):
    assert lane_count(world, accum, repeats) == lanes
    assert make(10, world, 0, repeats, accum=accum).lanes == lanes
    # Without lanes given (a caller without a plan, e.g. the sweep's data-order fingerprint) the same rule.
    assert RepeatedAugSampler(10, world, 0, repeats, accum_steps=accum).lanes == lanes


def test_the_sampler_deals_over_the_lanes_it_is_given():
    """The plan computes the lanes once; the sampler takes them as given (here more than world x accum needs)."""
    s = RepeatedAugSampler(96, 2, 1, repeats=3, lanes=8)
    assert s.lanes == 8 and len(s) == samples_per_process(96, 8, 2, 1) == 12 * 4
    assert s.slots()[:5].tolist() == [1, 3, 5, 7, 9]  # rank 1 holds the odd lanes of 8, one sample each in turn
    for lanes in (3, 2):  # not shared evenly by 2 processes, or fewer than the repeats
        with pytest.raises(ValueError):
            RepeatedAugSampler(96, 2, 0, repeats=3, lanes=lanes)


@pytest.mark.parametrize("n", [96, 100, 101, 1003])
@pytest.mark.parametrize("world,accum,batch,repeats", [
    (1, 1, 1, 3), (2, 1, 1, 3), (4, 1, 1, 3), (1, 8, 4, 3), (2, 4, 4, 3), (4, 2, 4, 3), (8, 1, 4, 3),
    (2, 1, 5, 3), (1, 1, 7, 1), (4, 2, 3, 1)])
def test_len_matches_samples_per_process(n, world, accum, batch, repeats):
    lanes = lane_count(world, accum, repeats)
    expect = samples_per_process(n, lanes, world, batch)
    assert expect == (math.ceil(n / lanes) // batch) * batch * (lanes // world)
    for rank in range(world):
        s = make(n, world, rank, repeats, batch=batch, accum=accum)
        idx = stream(s)
        assert len(s) == expect == len(idx) == len(s.slots())
        assert len(idx) % (batch * accum) == 0  # whole optimizer steps
        assert all(0 <= i < n for i in idx)


def test_indices_are_order_at_slots():
    s = make(200, 2, 1, seed=4, epoch=3, batch=4, accum=2)
    order = s.order().numpy()
    assert len(order) == 600
    assert (order[0::3] == order[1::3]).all() and (order[0::3] == order[2::3]).all()  # copies consecutive
    assert sorted(order[0::3].tolist()) == list(range(200))
    assert s.indices() == order[s.slots()].tolist()


def test_slots_layout_is_lanes_batch_by_batch():
    # world 2, accum 2, batch 3: lanes 4; rank 1 owns lanes 1 and 3; lane l's k-th sample is position l + 4k.
    s = make(100, 2, 1, batch=3, accum=2)
    got = steps(s.slots(), 3, 2)
    assert got[0].tolist() == [[1, 5, 9], [3, 7, 11]]
    assert got[1].tolist() == [[13, 17, 21], [15, 19, 23]]
    assert len(got) == math.ceil(100 / 4) // 3


# --- the issue: world x accum lanes, as 8 GPUs -------------------------------------------------------------

GRID = [(1, 8), (2, 4), (4, 2)]


@pytest.mark.parametrize("n,batch", [(1000, 8), (1003, 5), (777, 16)])
@pytest.mark.parametrize("world,accum", GRID)
def test_accumulation_matches_eight_processes(world, accum, n, batch):
    seed, epoch = 11, 2
    procs = [make(n, world, r, seed=seed, epoch=epoch, batch=batch, accum=accum) for r in range(world)]
    ref = [make(n, 8, r, seed=seed, epoch=epoch, batch=batch, accum=1) for r in range(8)]
    slots = [p.slots() for p in procs]
    idx = [stream(p) for p in procs]

    # Every micro-batch holds distinct images.
    for own in idx:
        for micro in steps(own, batch, 1)[:, 0]:
            assert len(set(micro.tolist())) == batch

    # Each image's copies fall in different micro-batches (over all processes).
    where: dict[int, list[tuple[int, int]]] = {}
    for r, own in enumerate(idx):
        for m, micro in enumerate(steps(own, batch, 1)[:, 0]):
            for i in micro.tolist():
                where.setdefault(i, []).append((r, m))
    assert max(len(v) for v in where.values()) == 3
    for i, places in where.items():
        assert len(places) == len(set(places)), f"image {i} twice in one micro-batch: {places}"

    # Process shares are disjoint as slots; their union is exactly what 8 processes x 1 accumulation draw.
    for a in range(world):
        assert len(set(slots[a].tolist())) == len(slots[a])
        for b in range(a + 1, world):
            assert not set(slots[a].tolist()) & set(slots[b].tolist())
    union = sorted(np.concatenate(slots).tolist())
    assert union == sorted(np.concatenate([p.slots() for p in ref]).tolist())
    assert Counter(i for s in idx for i in s) == Counter(i for p in ref for i in stream(p))

    # Step by step: optimizer step t's global batch (all processes' micro-batches) equals step t of 8 x 1.
    mine = [steps(s, batch, accum) for s in slots]
    theirs = [steps(p.slots(), batch, 1) for p in ref]
    n_steps = len(mine[0])
    assert n_steps > 1 and all(len(m) == n_steps for m in mine + theirs)
    for t in range(n_steps):
        g = sorted(np.concatenate([m[t].reshape(-1) for m in mine]).tolist())
        h = sorted(np.concatenate([m[t].reshape(-1) for m in theirs]).tolist())
        assert g == h, f"step {t} differs"
        # ... and micro-batch for micro-batch: micro-step j of rank r is GPU j * world + r's batch.
        for r in range(world):
            for j in range(accum):
                assert mine[r][t, j].tolist() == theirs[j * world + r][t, 0].tolist()
    gi = sorted(np.concatenate([steps(s, batch, accum)[0].reshape(-1) for s in idx]).tolist())
    hi = sorted(np.concatenate([steps(stream(p), batch, 1)[0].reshape(-1) for p in ref]).tolist())
    assert gi == hi


def test_one_process_no_accumulation_three_lanes():
    n, batch = 600, 10
    s = make(n, 1, 0, seed=3, batch=batch)
    assert s.lanes == 3
    batches = steps(stream(s), batch, 1)[:, 0]
    assert len(batches) == 3 * (math.ceil(n / 3) // batch)
    for b in batches:
        assert len(set(b.tolist())) == batch
    where: dict[int, list[int]] = {}
    for m, b in enumerate(batches):
        for i in b.tolist():
            where.setdefault(i, []).append(m)
    assert set(map(len, where.values())) == {3} and len(where) == n // 3
    for i, ms in where.items():
        assert ms[1] == ms[0] + 1 and ms[2] == ms[0] + 2 and ms[0] % 3 == 0, (i, ms)
    # Batches 3t, 3t+1, 3t+2 hold the same images (each image once in each).
    for t in range(0, len(batches), 3):
        assert set(batches[t].tolist()) == set(batches[t + 1].tolist()) == set(batches[t + 2].tolist())


def test_two_processes_no_accumulation_four_lanes():
    n, batch, world = 800, 8, 2
    procs = [make(n, world, r, seed=9, batch=batch) for r in range(world)]
    assert all(p.lanes == 4 for p in procs)
    idx = [steps(stream(p), batch, 1)[:, 0] for p in procs]
    assert len(idx[0]) == len(idx[1]) == 2 * (n // 4 // batch)
    where: dict[int, list[tuple[int, int]]] = {}
    for r in range(world):
        for m, b in enumerate(idx[r]):
            assert len(set(b.tolist())) == batch
            for i in b.tolist():
                where.setdefault(i, []).append((r, m))
    for i, places in where.items():
        assert len(places) == len(set(places)) <= 3
    total = Counter(i for r in range(world) for b in idx[r] for i in b.tolist())
    assert sum(total.values()) == n and len(total) == math.ceil(n / 3)
    slots = [p.slots() for p in procs]
    assert not set(slots[0].tolist()) & set(slots[1].tolist())
    assert sorted(np.concatenate(slots).tolist()) == list(range(n))


def test_a2_imagenet_micro_batches_hold_distinct_images():
    """A2 on ImageNet-1k: 1 process, batch 256, accumulation 8, 3 repeats. Before the change the process's
    stream was the repeated order itself, so a micro-batch of 256 held ~86 distinct images."""
    n, batch, accum, repeats, first_steps = 1_281_167, 256, 8, 3, 4
    t0 = time.perf_counter()
    s = make(n, 1, 0, repeats, seed=0, epoch=0, batch=batch, accum=accum)
    assert s.lanes == 8
    assert len(s) == samples_per_process(n, 8, 1, batch) == (math.ceil(n / 8) // 256) * 256 * 8
    order = s.order().numpy()
    head = s.slots()[:first_steps * accum * batch]
    micro = order[head].reshape(-1, batch)
    distinct = [len(np.unique(m)) for m in micro]
    before = [len(np.unique(order[k * batch:(k + 1) * batch])) for k in range(len(micro))]
    # Copies of an image across the first steps' micro-batches are never in the same one.
    ids = np.repeat(np.arange(len(micro)), batch)
    pairs = np.unique(np.stack([micro.reshape(-1), ids]), axis=1)
    assert pairs.shape[1] == micro.size
    print(f"\nA2 ImageNet (N={n}, 1 process, batch {batch}, accum {accum}, repeats {repeats}): distinct images per "
          f"micro-batch over the first {len(micro)} micro-batches: min {min(distinct)}, max {max(distinct)} "
          f"(before the change: {min(before)}-{max(before)}); {time.perf_counter() - t0:.2f} s")
    assert distinct == [batch] * len(micro)
    assert before == [86] * len(micro)  # 256 consecutive positions of 3-copy blocks


# --- repeats and counts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("world,accum", [(1, 1), (2, 1), (4, 1), (1, 8), (2, 4)])
def test_each_selected_index_appears_three_times(world, accum):
    n = 120 * 8  # divisible by every lane count here, and by 3: no truncation edge
    counts = Counter(i for idx in shares(n, world, accum=accum) for i in idx)
    assert set(counts.values()) == {3}
    assert len(counts) == n // 3


@pytest.mark.parametrize("world,accum", [(1, 1), (2, 1), (4, 1), (1, 8)])
def test_truncation_edge_only_last_index_short(world, accum):
    n = 101
    counts = Counter(i for idx in shares(n, world, accum=accum) for i in idx)
    lanes = lane_count(world, accum, 3)
    total = math.ceil(n / lanes) * lanes
    assert sum(counts.values()) == total
    assert len(counts) == math.ceil(total / 3)
    short = [c for c in counts.values() if c != 3]
    assert len(short) <= 1 and all(c < 3 for c in short)


@pytest.mark.parametrize("n", [120, 1000])
@pytest.mark.parametrize("world,accum", [(4, 1), (1, 8)])
def test_about_n_over_3_distinct(n, world, accum):
    distinct = {i for idx in shares(n, world, accum=accum) for i in idx}
    assert abs(len(distinct) - n / 3) <= 3


def test_copies_land_on_different_ranks_world4():
    per = shares(200, 4)
    where: dict[int, list[int]] = {}
    for rank, idx in enumerate(per):
        for i in idx:
            where.setdefault(i, []).append(rank)
    for i, ranks in where.items():
        assert len(ranks) == len(set(ranks)), f"index {i} repeated on one rank: {ranks}"


def test_copies_land_on_different_ranks_world3():
    per = shares(99, 3)
    assert make(99, 3).lanes == 3
    assert per[0] == per[1] == per[2], "with world == repeats each rank sees the same images"
    for idx in per:
        assert len(set(idx)) == len(idx) == 33


# --- seeding -----------------------------------------------------------------------------------------------

def test_different_seed_different_order():
    assert shares(100, 2, seed=0) != shares(100, 2, seed=1)
    assert shares(100, 1, seed=0, accum=8) != shares(100, 1, seed=1, accum=8)


def test_different_epoch_different_order():
    assert shares(100, 2, epoch=0) != shares(100, 2, epoch=1)
    assert shares(100, 1, epoch=0, accum=8) != shares(100, 1, epoch=1, accum=8)


def test_same_seed_epoch_identical():
    assert shares(100, 4, seed=7, epoch=3) == shares(100, 4, seed=7, epoch=3)
    s = make(100, 1, 0, seed=7, epoch=3, batch=4, accum=2)
    assert stream(s) == stream(s)
    t = make(100, 1, 0, seed=7, epoch=0, batch=4, accum=2)
    t.set_epoch(3)
    assert stream(t) == stream(s)


def test_seed_epoch_not_interchangeable():
    assert shares(100, 1, seed=1, epoch=0) != shares(100, 1, seed=0, epoch=1)
    assert seed_for(1, 0) != seed_for(0, 1)


def test_many_seeds_give_distinct_orders():
    orders = {tuple(shares(50, 1, repeats=1, seed=s)[0]) for s in range(20)}
    assert len(orders) == 20


def test_seed_for_is_63_bit_and_deterministic():
    v = seed_for(3, 4)
    assert v == seed_for(3, 4)
    assert all(0 <= seed_for(a, b) < 2 ** 63 for a in range(5) for b in range(5))
    assert len({seed_for(a, b) for a in range(5) for b in range(5)}) == 25


# --- repeats=1, no shuffle -----------------------------------------------------------------------------------

@pytest.mark.parametrize("world,accum", [(1, 1), (2, 1), (4, 1), (1, 4), (2, 2)])
def test_repeats1_is_distributed_permutation(world, accum):
    n = 100  # divisible by every lane count here
    per = shares(n, world, repeats=1, accum=accum)
    flat = [i for idx in per for i in idx]
    assert sorted(flat) == list(range(n))
    for a in range(world):
        for b in range(a + 1, world):
            assert not set(per[a]) & set(per[b])


@pytest.mark.parametrize("world,accum", [(2, 1), (4, 1), (1, 4)])
def test_repeats1_pads_by_wrapping(world, accum):
    n = 101
    per = shares(n, world, repeats=1, accum=accum)
    lanes = world * accum
    flat = [i for idx in per for i in idx]
    assert len(flat) == math.ceil(n / lanes) * lanes
    assert set(flat) == set(range(n))
    assert all(len(idx) == len(flat) // world for idx in per)
    # The padding re-draws the first positions of the order (slots past the end wrap).
    s = make(n, world, 0, repeats=1, accum=accum)
    order = s.order().numpy()
    extra = Counter(flat) - Counter(range(n))
    assert sorted(extra.elements()) == sorted(order[:len(flat) - n].tolist())


def test_repeats1_is_shuffled():
    (idx,) = shares(100, 1, repeats=1)
    assert idx != list(range(100))


def test_no_shuffle_is_ordered():
    assert stream(make(10, 1, 0, repeats=1, shuffle=False)) == list(range(10))
    # [0,0,0,1,1,1,...] over 4 lanes (2 processes, lanes 2x2); rank 1 owns lanes 1 and 3: positions 1, 3.
    assert stream(make(4, 2, 1, repeats=3, shuffle=False)) == [0, 1]
    # 1 process, 3 lanes: lane j's k-th sample is image k; stream is batch t of lanes 0, 1, 2.
    assert stream(make(12, 1, 0, repeats=3, shuffle=False, batch=2)) == [0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3]


# --- mid-epoch resume --------------------------------------------------------------------------------------

@pytest.mark.parametrize("world,rank,accum,batch", [(1, 0, 1, 1), (4, 2, 1, 1), (1, 0, 8, 4), (2, 1, 4, 4)])
def test_set_epoch_start_skips(world, rank, accum, batch):
    s = make(400, world, rank, seed=5, epoch=2, batch=batch, accum=accum)
    full = stream(s)
    for start in (17, batch * accum, len(full) - 1):
        s.set_epoch(2, start=start)
        assert stream(s) == full[start:]
        assert len(s) == len(full) - start
    s.set_epoch(2)
    assert stream(s) == full and len(s) == len(full)


@pytest.mark.parametrize("world,accum,batch", [(1, 1, 1), (1, 8, 4), (2, 4, 4), (4, 1, 3)])
def test_seeded_stream_resume_matches_uninterrupted(world, accum, batch):
    for rank in range(world):
        s = make(300, world, rank, seed=13, epoch=4, batch=batch, accum=accum)
        full = list(s)
        assert len(full) == len(s) == len(s)
        assert [i for i, _ in full] == s.indices()
        seeds = [sd for _, sd in full]
        assert len(set(seeds)) == len(seeds) and all(0 <= sd < 2 ** 63 for sd in seeds)
        for start in (1, 7, batch * accum):
            s.set_epoch(4, start)
            resumed = list(s)
            assert len(resumed) == len(s) == len(full) - start
            assert resumed == full[start:]
        s.set_epoch(4)
    # Seeds depend on seed, epoch and rank.
    a = [sd for _, sd in make(300, 2, 0, seed=13, epoch=4)]
    assert a != [sd for _, sd in make(300, 2, 1, seed=13, epoch=4)]
    assert a != [sd for _, sd in make(300, 2, 0, seed=13, epoch=5)]
    assert a != [sd for _, sd in make(300, 2, 0, seed=14, epoch=4)]


@pytest.mark.parametrize("world,rank,repeats", [(1, 1, 3), (2, 2, 3), (4, -1, 3), (2, 5, 1)])
def test_rank_out_of_range(world, rank, repeats):
    with pytest.raises(ValueError):
        RepeatedAugSampler(10, num_replicas=world, rank=rank, repeats=repeats)
