"""The phase detector on a synthetic heating run with a planted Pnma → cubic transition."""

import numpy as np
import pytest
from helpers import TC, synthetic_heating

from bornfield.analysis import phases as P
from bornfield.errors import BornfieldError
from bornfield.label.generators import pnma_catio3


def test_pnma_and_cubic_references():
    pnma, cubic = pnma_catio3(), pnma_catio3(amplitude=0)
    assert P.space_group(pnma)["0.01"] == "Pnma (62)"
    import phonopy  # noqa: F401  (switches spglib from returning None to raising)

    close = cubic.copy()
    close.positions[1] = close.positions[0] + 0.05
    assert P.space_group(close, (0.1,)) == {"0.1": "None"}
    assert P.space_group(cubic)["0.01"] == "Pm-3m (221)"
    assert np.allclose(P.pseudocubic_multiples(pnma.repeat((4, 4, 2))), [4 * 2**0.5, 8, 2 * 2**0.5])
    axes = P.pseudocubic_axes(pnma)
    tilts = P.tilt_angles(pnma, axes)
    assert np.all(tilts > 5) and np.all(tilts < 15)  # CaTiO3: Ti–O–Ti ≈ 156°, so θ ≈ 12°
    assert np.allclose(P.tilt_angles(cubic, axes), 0, atol=1e-6)
    assert (axes[np.arange(3), np.abs(axes).argmax(1)] > 0).all()  # one sign convention
    bd = P.bonds(pnma)  # one neighbour list, shared by the analyses of a frame
    assert len(bd.b) == 6 * 4 and np.allclose(np.linalg.norm(bd.vec, axis=1), 1.95, atol=0.05)
    assert np.array_equal(P.tilt_angles(pnma, axes, bd=bd), tilts)
    from bornfield.label.generators import cubic_perovskite

    one = cubic_perovskite("CaTiO3", 3.85)  # each O bridges a Ti and its own periodic image
    assert np.allclose(P.tilt_angles(one, np.eye(3)), 0, atol=1e-6)
    lat = P.pseudocubic_lattice(cubic.cell.lengths(), P.pseudocubic_multiples(cubic))
    assert np.ptp(lat) < 1e-9


def test_rotation_modes_of_pnma():
    """Pnma CaTiO3 is a⁻a⁻c⁺: out-of-phase (R) rotations about two pseudo-cubic axes, in-phase
    (M) about the third, linear in the distortion amplitude and zero in the cubic cell; a
    domain variant (the rotations' signs flipped) has the same amplitudes; a pattern the
    20-atom cell cannot hold is NaN, and a cell that holds none is an error."""
    axes = P.pseudocubic_axes(pnma_catio3())
    for amp in (1.0, 0.5, 0.0):
        a = pnma_catio3(amplitude=amp).repeat((2, 1, 2))
        r, m = P.rotation_mode_signs(a, axes)
        rot = P.octahedral_rotations(a, axes)
        rr, mm = (r[:, None] * rot).mean(0), (m * rot).mean(0)
        k = int(np.argmax(np.abs(mm)))  # the in-phase axis
        assert abs(mm[k]) == pytest.approx(8.92 * amp, abs=0.05)
        assert np.abs(np.delete(mm, k)).max() < 1e-6 and abs(rr[k]) < 1e-6
        assert np.abs(np.delete(rr, k)) == pytest.approx([8.26 * amp] * 2, abs=0.05)
        assert (r[:, None] * -rot).mean(0) == pytest.approx(-rr)  # a variant: same |amplitude|
    r, m = P.rotation_mode_signs(pnma_catio3(), axes)
    assert np.isfinite(r).all() and np.isfinite(m).sum() == 4  # 20 atoms: R and one M only
    from bornfield.label.generators import cubic_perovskite

    with pytest.raises(BornfieldError, match="no octahedral rotation pattern fits"):
        P.rotation_mode_signs(cubic_perovskite("CaTiO3", 3.85), np.eye(3))  # one octahedron


def test_detector_finds_planted_transition():
    frames, temps = synthetic_heating()
    res = P.analyze_heating(frames, temps, window=5)
    tc = res["transition"]
    assert abs(tc["Tc_K"] - TC) < 30, tc  # found 1246 ± 4 K
    assert 1 < tc["Tc_err_K"] < 20 and tc["significant"]
    seq = res["space_group_sequence"]["0.1"]
    assert seq[0][0] == "Pnma (62)" and seq[-1][0] == "Pm-3m (221)"
    assert seq[0][2] < TC < seq[-1][1] + 130
    groups = [(w["T_K"], w["space_group"]["0.05"]) for w in res["windows"]]
    assert groups[0][1] == "Pnma (62)"
    assert groups[-1][1] == "Pm-3m (221)"
    below = [w["tilt_deg"] for w in res["windows"] if w["T_K"] < 600]
    above = [w["tilt_deg"] for w in res["windows"] if w["T_K"] > 1400]
    assert np.min(below) > 3 * np.max(above)


def test_order_window_sees_tilt_variants_hopping():
    """An order-disorder transition as a small cell shows it: every frame is rotated as much
    as the last, in one of two tilt variants, so that over each block of 16 frames the mean
    sign is √(1 − T/Tc) (Landau), zero above Tc. Per frame the rotation order parameter cannot
    see it; averaged over the blocks before squaring, it falls to zero at the planted Tc."""
    rng = np.random.default_rng(4)
    temps = np.linspace(300, 1800, 160)
    frames = []
    for i in range(len(temps)):
        m = np.sqrt(max(0.0, 1 - temps[i - i % 16 : i - i % 16 + 16].mean() / TC))
        sign = -1.0 if i % 16 < round(16 * (1 - m) / 2) else 1.0  # k of 16 frames flipped
        a = pnma_catio3(amplitude=sign * 0.8).repeat((2, 1, 2))
        a.positions += rng.normal(0, 0.01, a.positions.shape)
        frames.append(a)
    per_frame = P.analyze_heating(frames, temps, window=8)
    assert not per_frame["transition"]["significant"]
    assert per_frame["order_window_frames"] == 1 and len(per_frame["order_values"]) == 160
    assert np.ptp(per_frame["order_values"]) < 0.05 * per_frame["order_values"][0]
    res = P.analyze_heating(frames, temps, window=8, order_window=16)
    assert len(res["order_T_K"]) == len(res["order_values"]) == 10
    assert res["order_T_K"][0] == pytest.approx(temps[:16].mean())
    tc = res["transition"]
    assert tc["significant"] and abs(tc["Tc_K"] - TC) < 150, tc
    high = np.asarray(res["order_values"])[np.asarray(res["order_T_K"]) > TC + 100]
    assert high.max() < 0.01 * per_frame["order_values"][0]
    with pytest.raises(BornfieldError, match="order window must be >= 1"):
        P.analyze_heating(frames, temps, order_window=0)


def test_no_transition_in_noise_gives_wide_error():
    rng = np.random.default_rng(1)
    t = np.linspace(300, 1800, 60)
    res = P.transition_temperature(t, rng.normal(0, 1, 60))
    assert res["Tc_err_K"] > 100 and not res["significant"]


def test_straight_line_with_correlated_noise_is_no_transition():
    """Points along a run are correlated: a straight line with AR(1) noise (correlation 0.95
    between neighbours) is not a transition (the textbook F-test called 17 of 20 such lines,
    seeds 0-19, significant at p < 1e-3)."""
    rng = np.random.default_rng(2)
    t = np.linspace(300, 1800, 300)
    noise = np.zeros(len(t))
    for i in range(1, len(t)):
        noise[i] = 0.95 * noise[i - 1] + rng.normal()
    res = P.transition_temperature(t, 0.001 * t + noise)
    assert not res["significant"] and res["p_value"] > 0.01


def test_order_parameter_that_rises_again_is_no_transition():
    """A V-shaped series (falling, then rising faster), as the tilts of the default CaTiO3
    heating below its transition, or one that falls by a third and levels off: kinks the F
    statistic resolves, but no order parameter vanishing at Tc."""
    rng = np.random.default_rng(3)
    t = np.linspace(300, 1500, 300)
    y = np.where(t < 1300, 170 - 0.04 * (t - 300), 130 + 0.11 * (t - 1300))
    res = P.transition_temperature(t, y + rng.normal(0, 3, len(t)))
    assert res["p_value"] < 0.01 and not res["ordering"] and not res["significant"]
    falling = np.where(t < 1300, 0.15 * (1300 - t), 0.0) + rng.normal(0, 3, len(t))
    res = P.transition_temperature(t, falling)
    assert res["ordering"] and res["significant"] and abs(res["Tc_K"] - 1300) < 50
    # falling by a third, then level: rotations that persist (tilt variants hopping)
    level = np.where(t < 1300, 234 - 0.08 * (t - 300), 154.0) + rng.normal(0, 3, len(t))
    res = P.transition_temperature(t, level)
    assert res["p_value"] < 0.01 and not res["ordering"] and not res["significant"]
    assert 0.6 < res["fraction_left_at_Tc"] < 0.7


def test_bad_input():
    with pytest.raises(BornfieldError, match="one temperature per frame"):
        P.analyze_heating([pnma_catio3()], [300, 400])
    with pytest.raises(BornfieldError, match="window must be >= 1"):
        P.analyze_heating([pnma_catio3()], [300], window=0)


def test_polar_order_parameter():
    from bornfield.label.generators import cubic_perovskite

    cubic = cubic_perovskite("BaTiO3").repeat(2)
    assert np.allclose(P.polar_displacement(cubic), 0, atol=1e-9)
    polar = cubic.copy()
    polar.positions[np.array(polar.get_chemical_symbols()) == "Ti", 2] += 0.1
    assert np.allclose(P.polar_displacement(polar), [0, 0, 0.1], atol=1e-9)
    # Ti 0.3 Å off: apical O at 1.7 and 2.3 Å; a cutoff that loses one of them is refused
    # rather than averaged over an incomplete cage (5 O would give 0.3 + 2.3/5 Å)
    far = cubic.copy()
    far.positions[np.array(far.get_chemical_symbols()) == "Ti", 2] += 0.3
    assert np.allclose(P.polar_displacement(far), [0, 0, 0.3], atol=1e-9)
    with pytest.raises(BornfieldError, match="no Ti with O neighbours within 2.2"):
        P.polar_displacement(far, cutoff=2.2)
    with pytest.raises(BornfieldError, match="order parameter"):
        P.analyze_heating([polar] * 8, [300] * 8, order_parameter="spin")
