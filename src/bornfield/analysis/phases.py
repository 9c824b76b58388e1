"""Structural phases from a heating run (Fig 4): pseudo-cubic lattice parameters, octahedral
tilts, space groups of time-averaged windows, and a transition temperature with an error.

Pseudo-cubic parameters divide each cell length by its ideal multiple of the perovskite
parameter a₀ = (Ω / n_formula)^{1/3} (n, n√2 or n√3: Pnma 4×4×2 → 4√2, 8, 2√2). Tilts are
read from the B–O–B bond angles, θ = (180° − ∠BOB)/2, grouped by pseudo-cubic axis.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from bornfield.errors import BornfieldError

TOLERANCES = (0.01, 0.05, 0.1, 0.2)
#: the fewest (T, order parameter) points a Tc is fitted to
MIN_POINTS = 8


def pseudocubic_multiples(atoms: Atoms, atoms_per_formula: int = 5) -> np.ndarray:
    """Ideal multiples of a₀ (n, n√2, n√3) for each cell vector of a perovskite cell."""
    nfu = len(atoms) / atoms_per_formula
    a0 = (atoms.get_volume() / nfu) ** (1 / 3)
    cands = np.array([n * r for n in range(1, 33) for r in (1.0, np.sqrt(2), np.sqrt(3))])
    return np.array([cands[np.argmin(np.abs(cands - L / a0))] for L in atoms.cell.lengths()])


def pseudocubic_lattice(lengths: np.ndarray, multiples: np.ndarray) -> np.ndarray:
    """Cell lengths (…, 3) in Å → pseudo-cubic parameters (…, 3)."""
    return np.asarray(lengths) / np.asarray(multiples)


def time_average(frames: Sequence[Atoms]) -> Atoms:
    """Mean cell and mean fractional positions (unwrapped against the first frame)."""
    if not frames:
        raise BornfieldError("no frames to average")
    s0 = frames[0].get_scaled_positions(wrap=False)
    ds = [f.get_scaled_positions(wrap=False) - s0 for f in frames]
    mean_s = s0 + np.mean([d - np.round(d) for d in ds], axis=0)
    out = frames[0].copy()
    out.calc = None
    out.set_cell(np.mean([f.cell[:] for f in frames], axis=0), scale_atoms=False)
    out.set_scaled_positions(mean_s)
    return out


def space_group(atoms: Atoms, tolerances: Sequence[float] = TOLERANCES) -> dict[str, str]:
    """spglib's international symbol (number) at each distance tolerance (Å); "None" where
    spglib finds none (e.g. atoms closer than the tolerance in a time average over frames
    that swapped atoms). spglib returns None or raises, depending on whether phonopy (which
    switches spglib to exceptions on import) was imported first."""
    import spglib

    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)

    def one(t: float) -> str:
        try:
            return str(spglib.get_spacegroup(cell, symprec=t))
        except spglib.SpglibError:
            return "None"

    return {f"{t:g}": one(t) for t in tolerances}


@dataclass(frozen=True)
class Bonds:
    """The B–X bonds of a perovskite frame, each once: B atom, X atom, vector B → X (Å)."""

    b: np.ndarray
    x: np.ndarray
    vec: np.ndarray


def bonds(atoms: Atoms, b_site: str = "Ti", x_site: str = "O", cutoff: float = 2.6) -> Bonds:
    """Every B–X pair closer than ``cutoff`` (one neighbour list; the analyses below share it)."""
    from bornfield.models.neighbours import neighbour_pairs

    i, j, s = neighbour_pairs(atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    keep = (sym[i] == b_site) & (sym[j] == x_site)
    i, j, s = i[keep], j[keep], s[keep]
    return Bonds(i, j, atoms.positions[j] - atoms.positions[i] + s @ atoms.cell[:])


def _bridges(bd: Bonds, b_site: str, x_site: str, cutoff: float):
    """(B–X–B angle in degrees, B→B unit vector) for every X bonded to exactly two B."""
    order = np.lexsort((bd.b, bd.x))
    x, v = bd.x[order], -bd.vec[order]  # X → B, grouped by X
    _, first, count = np.unique(x, return_index=True, return_counts=True)
    first = first[count == 2]
    if not len(first):
        raise BornfieldError(f"no {b_site}–{x_site}–{b_site} bridges within {cutoff} Å")
    v1, v2 = v[first], v[first + 1]
    n1, n2 = np.linalg.norm(v1, axis=1), np.linalg.norm(v2, axis=1)
    cosang = np.sum(v1 * v2, axis=1) / n1 / n2
    bb = v2 - v1
    return np.degrees(np.arccos(np.clip(cosang, -1, 1))), bb / np.linalg.norm(bb, axis=1)[:, None]


def pseudocubic_axes(atoms: Atoms, b_site: str = "Ti", x_site: str = "O", cutoff: float = 2.6):
    """The three B–B bond directions of a perovskite (unit vectors, one per row, each with its
    largest component positive)."""
    _, dirs = _bridges(bonds(atoms, b_site, x_site, cutoff), b_site, x_site, cutoff)
    axes: list[np.ndarray] = []
    for v in dirs:
        if all(abs(v @ a) < 0.8 for a in axes):
            axes.append(v * np.sign(v[np.argmax(np.abs(v))]))
        if len(axes) == 3:
            break
    if len(axes) != 3:
        raise BornfieldError("could not find three pseudo-cubic B–B directions")
    return np.array(axes)


def tilt_angles(
    atoms: Atoms,
    axes: np.ndarray,
    b_site: str = "Ti",
    x_site: str = "O",
    cutoff: float = 2.6,
    bd: Bonds | None = None,
) -> np.ndarray:
    """Mean (180° − ∠B–O–B)/2 in degrees along each of the three pseudo-cubic ``axes``;
    ``bd``: the frame's :func:`bonds`, if already built."""
    bd = bonds(atoms, b_site, x_site, cutoff) if bd is None else bd
    angles, dirs = _bridges(bd, b_site, x_site, cutoff)
    which = np.argmax(np.abs(dirs @ np.asarray(axes).T), axis=1)
    tilt = (180.0 - angles) / 2
    return np.array([tilt[which == k].mean() if (which == k).any() else np.nan for k in range(3)])


def octahedral_rotations(
    atoms: Atoms,
    axes: np.ndarray,
    b_site: str = "Ti",
    x_site: str = "O",
    cutoff: float = 2.6,
    bd: Bonds | None = None,
) -> np.ndarray:
    """Signed rotation (degrees) of every B-site octahedron about each pseudo-cubic axis,
    (n_B, 3): the mean angle, right-handed about the axis, from the nearest in-plane axis to
    the B→X vectors of the four X in the plane ⊥ the axis. Unlike :func:`tilt_angles` (which
    averages unsigned B–X–B bends, so thermal bending keeps it far from zero in a cubic
    phase), its pattern over the octahedra (a⁻a⁻c⁺ in Pnma) averages thermal noise away."""
    bd = bonds(atoms, b_site, x_site, cutoff) if bd is None else bd
    axes = np.asarray(axes, dtype=float)
    b_atoms = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == b_site)
    row = np.searchsorted(b_atoms, bd.b)  # each bond's B, as a row of the output
    u = bd.vec / np.linalg.norm(bd.vec, axis=1)[:, None]
    out = np.full((len(b_atoms), 3), np.nan)
    for k, a in enumerate(axes):
        inplane = np.abs(u @ a) < 0.5  # the X in the plane ⊥ a
        v = u[inplane] - np.outer(u[inplane] @ a, a)
        others = np.delete(axes, k, axis=0)
        ref = np.concatenate([others, -others])  # the in-plane axes, both ways
        e = ref[np.argmax(v @ ref.T, axis=1)]  # the nearest one to each X
        ang = np.degrees(np.arctan2(np.cross(e, v) @ a, np.sum(e * v, axis=1)))
        n = np.bincount(row[inplane], minlength=len(b_atoms))
        total = np.bincount(row[inplane], ang, minlength=len(b_atoms))
        out[n > 0, k] = total[n > 0] / n[n > 0]
    return out


def rotation_mode_signs(
    atoms: Atoms, axes: np.ndarray, b_site: str = "Ti", cutoff: float = 2.6
) -> tuple[np.ndarray, np.ndarray]:
    """The signs of the out-of-phase (R point, ``a⁻``) and in-phase (M point, ``a⁺``) rotation
    patterns about each pseudo-cubic axis, per B site: (n_B,) and (n_B, 3). From the B sites'
    integer pseudo-cubic coordinates n: R = (−1)^(n₁+n₂+n₃), M about axis a = the same without
    n_a. A pattern the cell cannot hold (a lattice vector that flips its sign) is NaN; a cell
    that holds none of them is an error."""
    from ase.neighborlist import neighbor_list

    sym = np.array(atoms.get_chemical_symbols())
    pos = atoms.positions[sym == b_site]
    rel = (pos - pos[0]) @ np.asarray(axes).T
    # the B–B spacing: within 2 B–X bonds only nearest B neighbours (the next are √2 further)
    spacing = float(np.median(neighbor_list("d", atoms[sym == b_site], 2 * cutoff)))
    n = np.round(rel / spacing).astype(int)
    # a pattern fits the cell when every lattice vector keeps its sign
    cell_n = np.round(atoms.cell[:] @ np.asarray(axes).T / spacing).astype(int)
    fits = [not (cell_n.sum(1) % 2).any()] + [
        not ((cell_n.sum(1) - cell_n[:, k]) % 2).any() for k in range(3)
    ]
    if not any(fits):
        raise BornfieldError(f"no octahedral rotation pattern fits the cell {cell_n.tolist()}")
    r = (-1.0) ** n.sum(1) if fits[0] else np.full(len(n), np.nan)
    m = np.stack(
        [(-1.0) ** (n.sum(1) - n[:, k]) if fits[k + 1] else np.full(len(n), np.nan)
         for k in range(3)], axis=1,
    )  # fmt: skip
    return r, m


def polar_displacement(
    atoms: Atoms,
    b_site: str = "Ti",
    x_site: str = "O",
    cutoff: float = 2.6,
    bd: Bonds | None = None,
) -> np.ndarray:
    """Mean off-centring vector (Å) of the B cations from the centroid of their O neighbours:
    the ferroelectric order parameter (zero on average in a paraelectric phase)."""
    bd = bonds(atoms, b_site, x_site, cutoff) if bd is None else bd
    order = np.lexsort((np.linalg.norm(bd.vec, axis=1), bd.b))  # by B, nearest X first
    _, first, count = np.unique(bd.b[order], return_index=True, return_counts=True)
    # the octahedron: each B's 6 nearest X; an incomplete cage would bias it
    cages = first[count >= 6][:, None] + np.arange(6)
    if not len(cages):
        raise BornfieldError(f"no {b_site} with {x_site} neighbours within {cutoff} Å")
    return -bd.vec[order][cages].mean(axis=(0, 1))  # mean of B − centroid of its X cage


def transition_temperature(
    temperature: np.ndarray, order: np.ndarray, n_boot: int = 200, seed: int = 0
) -> dict:
    """Tc from a hinge fit of an order parameter against T, with a bootstrap error.

    The model is two straight lines that meet at Tc (ordered phase below, disordered above);
    Tc is scanned over the data range (10 % margins), the error comes from refitting with
    residuals resampled in blocks (points in time order, e.g. along a ramp); ``significant``
    says whether the kink beats a single straight line: the F statistic of the hinge against
    the line, maximised over Tc, is compared with its distribution under a straight line
    (the line plus its own residuals resampled in blocks, ``n_boot`` times), p < 0.01, and
    whether the kink has the shape of an order parameter that vanishes at Tc (``ordering``):
    falling below Tc, flatter above it (|slope above| < |slope below|), and at Tc less than
    half its fitted value at the lowest T (Landau: zero, less a finite-size floor). A textbook
    F-test took the fitted Tc and the correlation of points along a run as free, and called 17
    of 20 straight lines with strongly correlated noise transitions; without the shape
    condition a V (tilts falling, then rising faster: the default CaTiO3 heating of
    2026-12-07) was called a transition at 1317 K, and a rotation order parameter that fell by
    a third and then levelled off (octahedra still rotated, hopping between tilt variants) one
    at 1294 K.
    """
    t, y = np.asarray(temperature, float), np.asarray(order, float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < MIN_POINTS:
        raise BornfieldError(f"transition temperature: only {len(t)} points")
    lo, hi = np.quantile(t, [0.1, 0.9])
    grid = np.linspace(lo, hi, 200)

    # the hinge's design matrix at every trial Tc (T in units of 1000 K for conditioning)
    design = np.stack(
        [np.ones((len(grid), len(t))), np.minimum(t - grid[:, None], 0) / 1e3,
         np.maximum(t - grid[:, None], 0) / 1e3], axis=-1,
    )  # fmt: skip
    gram = np.einsum("gni,gnj->gij", design, design)

    def fit(yv: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(SSE, Tc, coefficients) of the best hinge (least squares at every trial Tc)."""
        yc = yv - yv.mean()  # the intercept absorbs the mean: SSE and Tc are unchanged
        coef = np.linalg.solve(gram, np.einsum("gni,n->gi", design, yc)[..., None])[..., 0]
        sse = ((np.einsum("gni,gi->gn", design, coef) - yc) ** 2).sum(axis=1)
        k = int(np.argmin(sse))
        c = coef[k] * [1, 1e-3, 1e-3]  # back to per-K slopes
        return float(sse[k]), float(grid[k]), c + [yv.mean(), 0, 0]

    _, tc, coef = fit(y)
    x = np.stack([np.ones_like(t), np.minimum(t - tc, 0), np.maximum(t - tc, 0)], 1)
    resid = y - x @ coef
    # moving-block bootstrap: frames along a ramp are correlated in time, so residuals are
    # resampled in blocks of 4 autocorrelation times (at most a quarter of the run)
    from bornfield.analysis.stats import block_size

    n = len(t)
    rng = np.random.default_rng(seed)

    def resample(r: np.ndarray) -> np.ndarray:
        block = min(block_size(r), max(1, n // 4))
        starts = rng.integers(0, n - block + 1, -(-n // block))
        return np.concatenate([r[s : s + block] for s in starts])[:n]

    boots = [fit(x @ coef + resample(resid))[1] for _ in range(n_boot)]

    # is a kink needed at all? the hinge's F statistic against one line, and its null
    # distribution from straight lines with the data's own (correlated) residuals
    def f_stat(yv: np.ndarray) -> float:
        sse_line = float(((np.polyval(np.polyfit(t, yv, 1), t) - yv) ** 2).sum())
        sse_hinge = fit(yv)[0]
        return (sse_line - sse_hinge) / 2 / max(sse_hinge / (n - 4), 1e-300)

    line = np.polyval(np.polyfit(t, y, 1), t)
    observed = f_stat(y)
    null = [f_stat(line + resample(y - line)) for _ in range(n_boot)]
    p_value = (1 + sum(f >= observed for f in null)) / (1 + n_boot)
    at_start = coef[0] + coef[1] * (t.min() - tc)  # the fit at the lowest T; coef[0]: at Tc
    ordering = bool(coef[1] < 0 and abs(coef[2]) < abs(coef[1]) and coef[0] < 0.5 * at_start)
    return {
        "Tc_K": float(tc),
        "Tc_err_K": float(np.std(boots, ddof=1)),
        "slope_below": float(coef[1]),
        "slope_above": float(coef[2]),
        "p_value": p_value,
        "ordering": ordering,  # the kink of an order parameter vanishing at Tc
        "fraction_left_at_Tc": float(coef[0] / at_start) if at_start > 0 else None,
        # else: no transition resolved in this T range
        "significant": bool(p_value < 0.01 and ordering),
    }


def analyze_heating(
    frames: Sequence[Atoms],
    frame_temperatures: Sequence[float],
    window: int = 5,
    b_site: str = "Ti",
    x_site: str = "O",
    tolerances: Sequence[float] = TOLERANCES,
    order_parameter: str = "tilt",
    order_window: int = 1,
) -> dict:
    """Per window of ``window`` consecutive frames: mean T, pseudo-cubic a, b, c, tilts and the
    space group of the time-averaged structure; the space-group sequence per tolerance; Tc from
    a hinge fit of the ``order_parameter`` per frame: "tilt" (the squared amplitudes of the
    out-of-phase and in-phase octahedral rotation patterns about the three axes, from
    :func:`octahedral_rotations` and :func:`rotation_mode_signs`: a⁻a⁻c⁺ CaTiO3, in any domain
    variant; the unsigned mean squared B–O–B tilt is reported too, but thermal bending keeps it
    far from zero above Tc), "polar" (squared mean B off-centring, for ferroelectrics such as
    BaTiO3) or "lattice" (pseudo-cubic anisotropy max − min of a, b, c); the lattice one is
    always reported as a cross-check. Each is ∝ (Tc − T) below Tc in Landau theory.

    ``order_window``: consecutive frames whose order-parameter components (R and M amplitudes,
    mean off-centring vector, pseudo-cubic a, b, c) are averaged before squaring; Tc is fitted
    to these block means. A small cell above Tc hops between tilt or polar variants: each
    frame keeps large correlated rotations (≈ 11° in the 80-atom CaTiO3 cell at 1800 K),
    while their time average over a block falls towards zero (0–4° over 2 ps). 1: per frame."""
    if order_parameter not in ("tilt", "polar", "lattice"):
        raise BornfieldError(f"order parameter must be tilt, polar or lattice: {order_parameter!r}")
    if len(frames) != len(frame_temperatures):
        raise BornfieldError("one temperature per frame needed")
    if window < 1:
        raise BornfieldError(f"window must be >= 1 frame, got {window}")
    if order_window < 1:
        raise BornfieldError(f"order window must be >= 1 frame, got {order_window}")
    if len(frames) < window:
        raise BornfieldError(f"{len(frames)} frames, fewer than one window of {window}")
    mult = pseudocubic_multiples(frames[0])
    axes = pseudocubic_axes(frames[0], b_site, x_site)
    temps = np.asarray(frame_temperatures, float)
    lat = pseudocubic_lattice([f.cell.lengths() for f in frames], mult)
    rows = []
    for s in range(0, len(frames) - window + 1, window):
        avg = time_average(frames[s : s + window])
        rows.append(
            {
                "T_K": float(temps[s : s + window].mean()),
                "pseudocubic_A": lat[s : s + window].mean(0).tolist(),
                "tilt_deg": tilt_angles(avg, axes, b_site, x_site).tolist(),
                "space_group": space_group(avg, tolerances),
            }
        )
    bds = [bonds(f, b_site, x_site) for f in frames]  # one neighbour list per frame
    tilt_sq = np.array(
        [
            np.mean(tilt_angles(f, axes, b_site, x_site, bd=bd) ** 2)
            for f, bd in zip(frames, bds, strict=True)
        ]
    )
    # the rotations' R (a⁻) and M (a⁺) pattern amplitudes about each axis: which axes and
    # signs carry them may change along a run (domain variants), their sum of squares may not
    try:
        sign_r, sign_m = rotation_mode_signs(frames[0], axes, b_site)
        rot = np.array(
            [
                octahedral_rotations(f, axes, b_site, x_site, bd=bd)
                for f, bd in zip(frames, bds, strict=True)
            ]
        )
        with warnings.catch_warnings():  # a pattern the cell cannot hold: all NaN, no warning
            warnings.simplefilter("ignore", RuntimeWarning)
            rot_r = np.nanmean(sign_r[None, :, None] * rot, axis=1)  # (frames, 3), degrees
            rot_m = np.nanmean(sign_m[None] * rot, axis=1)
    except BornfieldError:
        if order_parameter == "tilt":
            raise
        rot_r = rot_m = np.full((len(frames), 3), np.nan)  # a cell with no rotation pattern
    polar = np.array(
        [polar_displacement(f, b_site, x_site, bd=bd) for f, bd in zip(frames, bds, strict=True)]
    )

    def squared(rr: np.ndarray, mm: np.ndarray, pp: np.ndarray, ll: np.ndarray) -> np.ndarray:
        """The order parameter from its components (per frame or per block)."""
        return {
            "tilt": np.nansum(rr**2 + mm**2, axis=1), "polar": (pp**2).sum(1),
            "lattice": ll.max(1) - ll.min(1),
        }[order_parameter]  # fmt: skip

    order = squared(rot_r, rot_m, polar, lat)
    n_blocks = len(frames) // order_window

    def blocks(x: np.ndarray) -> np.ndarray:
        """Means over consecutive blocks of ``order_window`` frames (a partial last one dropped)."""
        x = np.asarray(x)[: n_blocks * order_window]
        return x.reshape(n_blocks, order_window, *x.shape[1:]).mean(axis=1)

    lat_b = blocks(lat)
    order_t, order_b = blocks(temps), squared(blocks(rot_r), blocks(rot_m), blocks(polar), lat_b)
    anis_b = lat_b.max(1) - lat_b.min(1)
    enough = n_blocks >= MIN_POINTS
    sequence: dict[str, list] = {}
    for tol in (f"{t:g}" for t in tolerances):
        seq: list = []
        for w in rows:
            g = w["space_group"][tol]
            if seq and seq[-1][0] == g:
                seq[-1][2] = w["T_K"]
            else:
                seq.append([g, w["T_K"], w["T_K"]])
        sequence[tol] = seq
    return {
        "multiples": mult.tolist(),
        "frame_T_K": temps.tolist(),
        "frame_pseudocubic_A": lat.tolist(),
        "window_frames": window,
        "windows": rows,
        "space_group_sequence": sequence,  # per tolerance: [group, first T, last T] runs
        "frame_tilt_sq_deg2": tilt_sq.tolist(),
        "frame_rotation_R_deg": rot_r.tolist(),  # out-of-phase amplitude about each axis
        "frame_rotation_M_deg": rot_m.tolist(),  # in-phase amplitude about each axis
        "frame_polar_displacement_A": polar.tolist(),
        "frame_order_parameter": order.tolist(),
        "order_window_frames": order_window,
        "order_T_K": order_t.tolist(),  # the block means that Tc is fitted to
        "order_values": order_b.tolist(),
        "transition": transition_temperature(order_t, order_b) if enough else None,
        "order_parameter": {
            "tilt": "tilt modes, Σ R² + M² (deg²)",
            "polar": "squared mean B off-centring (Å²)",
            "lattice": "pseudo-cubic anisotropy (Å)",
        }[order_parameter],
        "transition_from_lattice": transition_temperature(order_t, anis_b) if enough else None,
    }
