"""RepeatedAugSampler: seeded by (seed, epoch), copies spread over processes, equal shares per process."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from rsb.data.sampler import RepeatedAugSampler, seed_for


def shares(n, world, repeats=3, seed=0, epoch=0):
    out = []
    for rank in range(world):
        s = RepeatedAugSampler(n, num_replicas=world, rank=rank, repeats=repeats, seed=seed)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("n", [96, 100, 101])
def test_each_rank_gets_ceil_share(n, world):
    for rank, idx in enumerate(shares(n, world)):
        s = RepeatedAugSampler(n, world, rank, repeats=3)
        assert len(idx) == math.ceil(n / world) == len(s)
        assert all(0 <= i < n for i in idx)


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("n", [96, 100, 101])
def test_ranks_deal_round_robin_from_one_repeated_order(n, world):
    per = shares(n, world)
    per_rank = math.ceil(n / world)
    merged = [per[k % world][k // world] for k in range(per_rank * world)]
    # The merged stream is a shuffle with each index repeated 3 times consecutively.
    assert len(merged) == per_rank * world
    blocks = [merged[i:i + 3] for i in range(0, len(merged), 3)]
    for b in blocks:
        assert len(set(b)) == 1, f"copies not consecutive in the dealt order: {b}"
    firsts = [b[0] for b in blocks]
    assert len(set(firsts)) == len(firsts), "an index selected twice"


@pytest.mark.parametrize("world", [1, 2, 4])
def test_each_selected_index_appears_three_times(world):
    n = 120  # 120 divisible by 1, 2, 4 and by 3: no truncation edge
    counts = Counter(i for idx in shares(n, world) for i in idx)
    assert set(counts.values()) == {3}
    assert len(counts) == n // 3


@pytest.mark.parametrize("world", [1, 2, 4])
def test_truncation_edge_only_last_index_short(world):
    n = 101
    counts = Counter(i for idx in shares(n, world) for i in idx)
    total = math.ceil(n / world) * world
    assert sum(counts.values()) == total
    assert len(counts) == math.ceil(total / 3)
    short = [c for c in counts.values() if c != 3]
    assert len(short) <= 1 and all(c < 3 for c in short)


@pytest.mark.parametrize("n", [120, 1000])
def test_about_n_over_3_distinct(n):
    distinct = {i for idx in shares(n, 4) for i in idx}
    assert abs(len(distinct) - n / 3) <= 1


def test_copies_land_on_different_ranks_world4():
    n, world = 200, 4
    per = shares(n, world)
    where: dict[int, list[int]] = {}
    for rank, idx in enumerate(per):
        for i in idx:
            where.setdefault(i, []).append(rank)
    for i, ranks in where.items():
        assert len(ranks) == len(set(ranks)), f"index {i} repeated on one rank: {ranks}"


def test_copies_land_on_different_ranks_world3():
    n, world = 99, 3
    per = shares(n, world)
    for rank_a in range(world):
        for rank_b in range(rank_a + 1, world):
            assert per[rank_a] == per[rank_b], "with world == repeats each rank sees the same images"
    for idx in per:
        assert len(set(idx)) == len(idx)


def test_world1_all_copies_on_one_rank():
    (idx,) = shares(60, 1)
    assert len(idx) == 60 and len(set(idx)) == 20
    assert idx[0] == idx[1] == idx[2]


def test_different_seed_different_order():
    assert shares(100, 2, seed=0) != shares(100, 2, seed=1)


def test_different_epoch_different_order():
    assert shares(100, 2, epoch=0) != shares(100, 2, epoch=1)


def test_same_seed_epoch_identical():
    assert shares(100, 4, seed=7, epoch=3) == shares(100, 4, seed=7, epoch=3)
    s = RepeatedAugSampler(100, 1, 0, seed=7)
    s.set_epoch(3)
    assert list(s) == list(s)


def test_seed_epoch_not_interchangeable():
    a = shares(100, 1, seed=1, epoch=0)
    b = shares(100, 1, seed=0, epoch=1)
    assert a != b
    assert seed_for(1, 0) != seed_for(0, 1)


def test_many_seeds_give_distinct_orders():
    orders = {tuple(shares(50, 1, repeats=1, seed=s)[0]) for s in range(20)}
    assert len(orders) == 20


@pytest.mark.parametrize("world", [1, 2, 4])
def test_repeats1_is_distributed_permutation(world):
    n = 100  # divisible by 1, 2, 4
    per = shares(n, world, repeats=1)
    flat = [i for idx in per for i in idx]
    assert sorted(flat) == list(range(n))
    for a in range(world):
        for b in range(a + 1, world):
            assert not set(per[a]) & set(per[b])


@pytest.mark.parametrize("world", [2, 4])
def test_repeats1_pads_by_wrapping(world):
    n = 101
    per = shares(n, world, repeats=1)
    flat = [i for idx in per for i in idx]
    assert len(flat) == math.ceil(n / world) * world
    assert set(flat) == set(range(n))
    assert all(len(idx) == math.ceil(n / world) for idx in per)


def test_repeats1_is_shuffled():
    (idx,) = shares(100, 1, repeats=1)
    assert idx != list(range(100))


def test_no_shuffle_is_ordered():
    s = RepeatedAugSampler(10, 1, 0, repeats=1, shuffle=False)
    assert list(s) == list(range(10))
    s = RepeatedAugSampler(4, 2, 1, repeats=3, shuffle=False)
    assert list(s) == [0, 1]  # [0,0,0,1,1,1,...] dealt to rank 1: positions 1 and 3


@pytest.mark.parametrize("world,rank", [(1, 0), (4, 2)])
def test_set_epoch_start_skips(world, rank):
    s = RepeatedAugSampler(200, world, rank, repeats=3, seed=5)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=17)
    assert list(s) == full[17:]
    assert len(s) == len(full) - 17
    s.set_epoch(2)
    assert list(s) == full and len(s) == len(full)


@pytest.mark.parametrize("world,rank", [(1, 1), (2, 2), (4, -1), (2, 5)])
def test_rank_out_of_range(world, rank):
    with pytest.raises(ValueError):
        RepeatedAugSampler(10, num_replicas=world, rank=rank)


def test_seed_for_is_63_bit_and_deterministic():
    v = seed_for(3, 4)
    assert v == seed_for(3, 4)
    assert 0 <= v < 2 ** 63
