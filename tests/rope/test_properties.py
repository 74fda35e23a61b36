"""Properties of the scaling methods that hold whatever transformers does, and golden values for `ntk`
(which transformers 5 no longer implements as a rope_type)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ropescale import RopeScaling, compute_freqs
from ropescale.rope import base_inv_freq, cos_sin, dimension_table, ntk_base, yarn_correction_range
from ropescale.rope.spec import FACTOR_MAX

head_dims = st.sampled_from([16, 32, 64, 96, 128])
bases = st.sampled_from([10000.0, 100000.0, 500000.0, 1e6])
originals = st.sampled_from([128, 256, 2048, 4096, 8192])
factors = st.floats(min_value=1.0, max_value=64.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(head_dim=head_dims, base=bases, orig=originals)
@pytest.mark.parametrize("method", ["linear", "ntk", "dynamic", "yarn", "llama3", "longrope"])
def test_factor_one_equals_no_scaling(method, head_dim, base, orig):
    ones = (1.0,) * (head_dim // 2)
    extra = {"short_factor": ones, "long_factor": ones} if method == "longrope" else {}
    # dynamic NTK still grows the base beyond L even at s = 1 (s_eff = l/L), so compare it within L
    seq_len = orig if method == "dynamic" else 4 * orig
    scaled = compute_freqs(head_dim, base, RopeScaling(method, 1.0, orig, **extra), seq_len=seq_len)
    plain = compute_freqs(head_dim, base, RopeScaling("none", 1.0, orig))
    torch.testing.assert_close(scaled.inv_freq, plain.inv_freq, rtol=0, atol=0)
    assert scaled.attention_factor == 1.0


@settings(max_examples=50, deadline=None)
@given(head_dim=head_dims, base=bases, factor=st.sampled_from([2.0, 4.0, 8.0, 16.0]), p=st.integers(0, 4096))
def test_pi_at_position_p_times_s_equals_plain_at_p(head_dim, base, factor, p):
    """PI (Eq. 4): f'(x, m) = f(x, m / s), so position p*s under PI sees the angles of position p."""
    pi = compute_freqs(head_dim, base, RopeScaling("linear", factor, 2048))
    plain = compute_freqs(head_dim, base, RopeScaling("none", 1.0, 2048))
    cos_pi, sin_pi = cos_sin(pi.inv_freq, torch.tensor([p * factor]))
    cos, sin = cos_sin(plain.inv_freq, torch.tensor([float(p)]))
    # float32 angles of up to ~4096 rad: compare at float32 resolution of the angle
    torch.testing.assert_close(cos_pi, cos, rtol=0, atol=5e-4)
    torch.testing.assert_close(sin_pi, sin, rtol=0, atol=5e-4)


@settings(max_examples=60, deadline=None)
@given(head_dim=head_dims, base=bases, factor=factors, orig=originals)
def test_yarn_keeps_high_frequencies_and_interpolates_low_ones(head_dim, base, factor, orig):
    spec = RopeScaling("yarn", factor, orig)
    theta = base_inv_freq(head_dim, base).float()
    inv = compute_freqs(head_dim, base, spec).inv_freq
    low, high = yarn_correction_range(head_dim, base, spec)
    for i in range(head_dim // 2):
        if i <= low:  # ramp 0: frequency untouched (>= beta_fast rotations within L)
            assert inv[i] == theta[i]
        elif i >= high:  # ramp 1: plain PI
            torch.testing.assert_close(inv[i], theta[i] / factor, rtol=1e-6, atol=0)
        else:
            assert theta[i] / factor * (1 - 1e-6) <= inv[i] <= theta[i] * (1 + 1e-6)
    assert inv[0] == theta[0]  # the highest frequency is always kept
    assert math.isclose(compute_freqs(head_dim, base, spec).attention_factor, 0.1 * math.log(factor) + 1)


def test_yarn_correction_range_known_values():
    """PAPER.md 5.4: LLaMA (d=128, b=10000, L=2048) -> [16, 41]; Llama 2 (L=4096) -> [20, 46]."""
    assert yarn_correction_range(128, 10000.0, RopeScaling("yarn", 8.0, 2048)) == (16, 41)
    assert yarn_correction_range(128, 10000.0, RopeScaling("yarn", 8.0, 4096)) == (20, 46)


@settings(max_examples=60, deadline=None)
@given(head_dim=head_dims, base=bases, factor=factors, orig=originals)
def test_llama3_bands(head_dim, base, factor, orig):
    spec = RopeScaling("llama3", factor, orig)
    theta = base_inv_freq(head_dim, base)
    inv = compute_freqs(head_dim, base, spec).inv_freq.double()
    wavelen = 2 * math.pi / theta
    keep = wavelen < orig / 4.0
    divide = wavelen > orig / 1.0
    torch.testing.assert_close(inv[keep], theta[keep], rtol=1e-7, atol=0)
    torch.testing.assert_close(inv[divide], theta[divide] / factor, rtol=1e-7, atol=0)


@settings(max_examples=60, deadline=None)
@given(head_dim=head_dims, base=bases, factor=factors)
def test_ntk_keeps_highest_and_divides_lowest_frequency_by_s(head_dim, base, factor):
    """NTK-aware: b' = b s^(d/(d-2)) is chosen so the lowest frequency is scaled exactly like PI."""
    theta = base_inv_freq(head_dim, base)
    inv = compute_freqs(head_dim, base, RopeScaling("ntk", factor)).inv_freq.double()
    assert inv[0] == 1.0
    torch.testing.assert_close(inv[-1], theta[-1] / factor, rtol=1e-6, atol=0)


# Golden values computed once with mpmath at 40 significant digits:
#   b' = b * s**(d/(d-2)); inv_freq_i = b'**(-2i/d) for i = 1, d/4, d/2-1
NTK_GOLDEN = [
    (
        128,
        10000.0,
        4.0,
        40889.94243248621641308122,
        (0.84711718515120681339, 0.0049452898406803665738, 2.8869549617236454492e-05),
    ),
    (
        64,
        100000.0,
        2.0,
        204522.2871202536859235394,
        (0.68240052923871367019, 0.0022112084211302116876, 7.1650628511848137078e-06),
    ),
    (
        128,
        500000.0,
        8.0,
        4134231.132028110921812985,
        (0.7881680610894356464, 0.00049181596622209501825, 3.0689259889145110891e-07),
    ),
]


@pytest.mark.parametrize("head_dim,base,factor,new_base,values", NTK_GOLDEN)
def test_ntk_golden_values(head_dim, base, factor, new_base, values):
    assert math.isclose(ntk_base(head_dim, base, factor), new_base, rel_tol=1e-14)
    inv = compute_freqs(head_dim, base, RopeScaling("ntk", factor)).inv_freq
    got = [inv[i].item() for i in (1, head_dim // 4, head_dim // 2 - 1)]
    for g, want in zip(got, values, strict=True):
        assert math.isclose(g, want, rel_tol=1e-7)  # float32 result of a float64 computation


@settings(max_examples=40, deadline=None)
@given(head_dim=head_dims, base=bases, factor=factors, orig=originals, ratio=st.floats(1.0, 64.0))
def test_dynamic_equals_ntk_with_the_effective_factor(head_dim, base, factor, orig, ratio):
    """Dynamic NTK at length l = NTK-aware with s_eff = s l/L - (s - 1); plain RoPE up to L."""
    seq_len = int(orig * ratio)
    s_eff = factor * max(seq_len, orig) / orig - (factor - 1)
    assume(s_eff <= FACTOR_MAX)  # --factor's documented range
    dyn = compute_freqs(head_dim, base, RopeScaling("dynamic", factor, orig), seq_len=seq_len)
    ntk = compute_freqs(head_dim, base, RopeScaling("ntk", s_eff))
    torch.testing.assert_close(dyn.inv_freq, ntk.inv_freq, rtol=1e-6, atol=0)


def test_dimension_table_classifies_each_method():
    orig = 2048
    table = {m: dimension_table(128, 10000.0, RopeScaling(m, 8.0, orig)) for m in ("linear", "ntk", "yarn")}
    assert {d["kind"] for d in table["linear"]} == {"interpolated"}
    assert not any(d["unseen_angles"] for d in table["linear"])  # PI never leaves the trained range
    kinds = [d["kind"] for d in table["yarn"]]
    assert kinds[:17] == ["extrapolated"] * 17 and kinds[41:] == ["interpolated"] * 23
    assert set(kinds[17:41]) == {"blended"}
    assert table["ntk"][0]["kind"] == "extrapolated" and table["ntk"][-1]["kind"] == "interpolated"
    plain = dimension_table(128, 10000.0, RopeScaling("none", 8.0, orig))
    # plain RoPE at 8x: exactly the dims that had not completed a rotation within L see new angles
    unseen = [d["dim"] for d in plain if d["unseen_angles"]]
    assert unseen == [d["dim"] for d in plain if d["wavelength"] > orig]
