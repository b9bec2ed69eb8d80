"""Deep Compression storage: relative indices with fillers and Huffman coding round-trip exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lwc.passes.compress.sparse_codec import (
    entropy_bits,
    from_entries,
    huffman_decode,
    huffman_encode,
    to_entries,
)
from lwc.passes.compress.sharing import kmeans_ratio, kmeans_share, linear_init, magnitude_mask


@st.composite
def sparse_symbols(draw: st.DrawFn) -> np.ndarray:
    """Mostly-zero symbol arrays, including zero runs far longer than a 2- or 3-bit gap allows."""
    n = draw(st.integers(1, 400))
    density = draw(st.sampled_from([0.0, 0.01, 0.05, 0.3, 1.0]))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    syms = rng.integers(1, 16, n) * (rng.random(n) < density)
    return syms.astype(np.int64)


@settings(max_examples=150)
@given(sparse_symbols(), st.integers(1, 8))
def test_relative_index_round_trip_and_filler_count(syms: np.ndarray, gap_bits: int) -> None:
    e = to_entries(syms, gap_bits)
    assert np.array_equal(from_entries(e), syms)
    assert e.gaps.min(initial=0) >= 0 and e.gaps.max(initial=0) < 2 ** gap_bits
    # fillers: a run that needs an advance of d positions costs floor((d - 1) / 2**gap_bits)
    pos = np.flatnonzero(syms)
    advance = np.diff(np.concatenate([[-1], pos]))
    assert e.fillers == int(((advance - 1) // 2 ** gap_bits).sum())


@settings(max_examples=100)
@given(arrays(np.int64, st.integers(1, 300), elements=st.integers(0, 40)))
def test_huffman_round_trip_and_length_within_one_bit_of_entropy(values: np.ndarray) -> None:
    s = huffman_encode(values)
    assert np.array_equal(huffman_decode(s), values)
    if len(np.unique(values)) >= 2:
        h = entropy_bits(values)
        assert h - 1e-9 <= s.mean_length() < h + 1


def test_magnitude_mask_uses_quality_times_std_and_keeps_pruned() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal(1000)
    m = magnitude_mask(w, 1.0)
    assert np.array_equal(m, np.abs(w) >= w.std())
    m2 = magnitude_mask(w * 3, 2.0, keep=m, std=1.0)
    assert not np.any(m2 & ~m)
    assert np.array_equal(m2, m & (np.abs(w * 3) >= 2.0))


def test_kmeans_share_uses_at_most_2_to_the_b_minus_1_centroids_and_keeps_zeros() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((30, 40)).astype(np.float32)
    mask = np.abs(w) > 0.5
    cb, idx = kmeans_share(w, 5, mask)
    assert cb[0] == 0 and len(cb) <= 32
    assert np.all(idx[~mask] == 0) and np.all(idx[mask] > 0)
    shared = cb[idx]
    assert len(np.unique(shared[mask])) <= 31
    # k-means can only improve on assigning each weight to the nearest linear-init centroid
    init = linear_init(w[mask], 31)
    naive = np.abs(w[mask][:, None] - init[None]).min(axis=1)
    assert np.mean((shared[mask] - w[mask]) ** 2) <= np.mean(naive ** 2) + 1e-9


def test_kmeans_ratio_formula() -> None:
    # n*32 / (n*log2(k) + 32*k) with n = 1000, b = 5
    assert kmeans_ratio(1000, 5) == 32000 / (5000 + 1024)
