"""PoSE position ids (PAPER.md section 9): range, chunk structure, coverage, determinism, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ropescale.data import BatchSampler, DataRequest, pack
from ropescale.data.positions import Positions, pose_position_ids


def _draws(n: int, length: int, target: int, chunks: int) -> list[np.ndarray]:
    return [pose_position_ids(length, target, chunks, np.random.default_rng([5, i])) for i in range(n)]


@pytest.mark.parametrize(("length", "target", "chunks"), [(8, 64, 2), (32, 256, 3), (100, 101, 4), (5, 5, 5)])
def test_ids_follow_the_paper(length, target, chunks):
    """First id 0, strictly increasing, below L'; ids - 0..Lc-1 is the skip bias of each token's chunk: a
    non-decreasing step function with at most N values, u_0 = 0 and u_{N-1} <= L' - Lc, every chunk >= 1."""
    for ids in _draws(300, length, target, chunks):
        assert ids.dtype == np.int64 and ids.shape == (length,)
        assert ids[0] == 0 and ids[-1] < target
        assert (np.diff(ids) >= 1).all()
        skip = ids - np.arange(length)
        assert skip[0] == 0 and (np.diff(skip) >= 0).all() and skip[-1] <= target - length
        assert len(np.unique(skip)) <= chunks


def test_chunk_boundaries_and_skips_are_drawn_as_specified():
    """Hand-checked draw with N = 2: the cut point l_0 ~ U{1..Lc-1} and u_1 ~ U{0..L'-Lc}, both
    uniform (chi-square-free check: every value occurs and the means are right)."""
    length, target = 6, 20
    cuts, skips = [], []
    for ids in _draws(6000, length, target, 2):
        jump = np.flatnonzero(np.diff(ids) > 1)
        cut = int(jump[0]) + 1 if len(jump) else None
        skip = int(ids[-1] - (length - 1))
        skips.append(skip)
        if cut is not None:
            cuts.append(cut)
            assert ids[cut] - ids[cut - 1] == skip + 1
    assert set(skips) == set(range(target - length + 1))
    assert np.mean(skips) == pytest.approx((target - length) / 2, rel=0.05)
    assert set(cuts) == set(range(1, length))
    assert np.mean(cuts) == pytest.approx(length / 2, rel=0.05)


def test_large_relative_distances_are_covered():
    """The point of PoSE: over many draws the longest distance in a row approaches L' - 1, while a
    contiguous row of Lc tokens never exceeds Lc - 1."""
    spans = [int(ids[-1] - ids[0]) for ids in _draws(2000, 64, 1024, 2)]
    assert max(spans) >= 0.99 * 1023 and max(spans) <= 1023
    assert np.mean(np.array(spans) > 512) > 0.4


def test_one_chunk_is_contiguous_and_contiguous_draws_nothing():
    assert (pose_position_ids(16, 64, 1, np.random.default_rng(0)) == np.arange(16)).all()
    assert Positions().draw(16, seed=0, item=3) is None


def test_draws_are_deterministic_per_seed_and_item():
    p = Positions("pose", 2, 512)
    assert (p.draw(64, 1, 7) == p.draw(64, 1, 7)).all()
    assert not (p.draw(64, 1, 7) == p.draw(64, 1, 8)).all()
    assert not (p.draw(64, 1, 7) == p.draw(64, 2, 7)).all()


def test_sampler_gives_positions_and_resumes_them(tmp_path, bpe_tokenizer):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Now is the winter of our discontent. " * 300)
    packed = pack(DataRequest(str(folder), seq_len=32, val_fraction=0.0), bpe_tokenizer, tmp_path / "c")
    pose = Positions("pose", 2, 256)
    a = BatchSampler(packed, 4, seed=1, positions=pose)
    first = a.next_batch()
    assert first.positions.shape == first.ids.shape and first.positions.dtype == torch.int64
    assert (first.positions[:, 0] == 0).all() and (first.positions < 256).all()
    assert BatchSampler(packed, 4, seed=1).next_batch().positions is None
    plain = BatchSampler(packed, 4, seed=1).next_batch()
    assert torch.equal(plain.ids, first.ids)  # positions do not change which tokens are drawn
    state = a.state_dict()
    after = [a.next_batch() for _ in range(3)]
    b = BatchSampler(packed, 4, seed=1, positions=pose)
    b.load_state_dict(state)
    for x, y in zip(after, [b.next_batch() for _ in range(3)], strict=True):
        assert torch.equal(x.positions, y.positions) and torch.equal(x.ids, y.ids)
