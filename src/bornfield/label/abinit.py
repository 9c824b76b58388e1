"""ABINIT driver: SCF (energy, forces, stress), then DFPT ddk and electric-field response (Z*, ε∞).

One structure, one directory, one multi-dataset ABINIT run under ``mpirun`` (restarted from
checkpointed ground-state wavefunctions when a long SCF is interrupted); the output is parsed by
:func:`bornfield.data.importers.read_abinit_output`. Settings come in named presets.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.data.importers import read_abinit_output
from bornfield.errors import BornfieldError

PSP_DIR = Path(os.environ.get("BORNFIELD_PSP_DIR", "/usr/share/abinit/psp"))

#: Pseudopotentials (relative to PSP_DIR). Ca, O: PseudoDojo PBE; Ti, Ba: PseudoDojo PW (LDA);
#: Zr: HGH. All are used with PBEsol (libxc): a functional/pseudopotential mismatch, recorded
#: in every frame's provenance and in the dataset card.
PSEUDOS: dict[str, str] = {
    "Ca": "Pseudodojo_nc_sr_04_pbe_standard_psp8/Ca.psp8",
    "O": "Pseudodojo_nc_sr_04_pbe_standard_psp8/O.psp8",
    "Ti": "Pseudodojo_nc_sr_04_pw_standard_psp8/Ti.psp8",
    "Ba": "Pseudodojo_nc_sr_04_pw_standard_psp8/Ba.psp8",
    "Zr": "PseudosHGH_pwteter/40zr.12.hgh",
}
PBESOL_LIBXC = -116133
PBE_LIBXC = -101130
#: functionals by name: libxc ixc codes (ABINIT's negative ixc)
FUNCTIONALS = {"pbesol": PBESOL_LIBXC, "pbe": PBE_LIBXC}


class LabelError(BornfieldError):
    """A structure that could not be labelled (SCF not converged, ABINIT failed, ...)."""


@dataclass(frozen=True)
class AbinitSettings:
    """DFT settings of one labelling run (energies in Ha, as ABINIT takes them)."""

    ecut: float = 45.0  # forces within 0.5 meV/Å and stress within 0.01 GPa of 50 Ha
    # k-mesh n_i = ceil(kpt_length / |a_i|) (Å): 5×5×5 for 5-atom CaTiO3 (Z* 0.06 e from
    # 6×6×6), 4×3×4 for 20-atom Pnma
    kpt_length: float = 18.0
    kpt_shift: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # bands above the occupied ones, not converged (nbdbuf). 0: the DFPT of ABINIT 9.6 uses the
    # unconverged buffer bands, so with 2 of them Z* changed by up to 0.036 e when the same SCF
    # was restarted (0 with none; bench/results/dft_restart_zstar.md)
    extra_bands: int = 0
    # tolerances: Z* within 0.002 e of a 1e-12/1e-20/1e-12 reference at 0.37 of its cost
    tolvrs_scf: float = 1e-10
    tolwfr_ddk: float = 1e-12
    tolvrs_efield: float = 1e-6
    nstep: int = 60
    bec: bool = True
    ixc: int = PBESOL_LIBXC
    pseudos: dict[str, str] = field(default_factory=lambda: dict(PSEUDOS))

    def kmesh(self, atoms: Atoms) -> tuple[int, int, int]:
        lengths = atoms.cell.lengths()
        return tuple(max(1, math.ceil(self.kpt_length / a - 1e-6)) for a in lengths)  # type: ignore[return-value]


PRESETS: dict[str, AbinitSettings] = {
    # CI: seconds-to-minutes for 5-atom CaTiO3; Z* within ~0.15 e of converged, stress is not.
    "test": AbinitSettings(
        ecut=20.0,
        kpt_length=15.0,  # 4×4×4 for the 5-atom cell
        extra_bands=0,
        tolvrs_scf=1e-8,
        tolwfr_ddk=1e-12,
        tolvrs_efield=1e-6,
        nstep=40,
    ),
    "production": AbinitSettings(),
}


def valence_electrons(pseudo: Path) -> float:
    """zion from line 2 of an ABINIT-format pseudopotential header (psp8, HGH)."""
    with open(pseudo) as fh:
        fh.readline()
        return float(fh.readline().split()[1])


@functools.cache
def abinit_version() -> str:
    try:
        out = subprocess.run(["abinit", "--version"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise LabelError(
            "abinit not found: install it with 'apt-get install abinit abinit-data'"
        ) from None
    return out.stdout.strip()


def write_input(atoms: Atoms, settings: AbinitSettings) -> str:
    """The ABINIT input text for SCF (+ ddk + electric field when ``settings.bec``)."""
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))
    missing = [s for s in species if s not in settings.pseudos]
    if missing:
        raise LabelError(f"no pseudopotential configured for {', '.join(missing)}")
    pseudos = [PSP_DIR / settings.pseudos[s] for s in species]
    for p in pseudos:
        if not p.is_file():
            raise LabelError(f"pseudopotential {p} not found (apt-get install abinit-data)")
    zval = {s: valence_electrons(p) for s, p in zip(species, pseudos, strict=True)}
    nelect = sum(zval[s] for s in atoms.get_chemical_symbols())
    nocc = int(math.ceil(nelect / 2 - 1e-9))
    typat = [species.index(s) + 1 for s in atoms.get_chemical_symbols()]
    from ase.data import atomic_numbers

    kx, ky, kz = settings.kmesh(atoms)

    def rows(a: np.ndarray) -> str:
        return "\n".join("  " + " ".join(f"{v:.12f}" for v in r) for r in np.atleast_2d(a))

    lines = [
        f"# bornfield: {atoms.get_chemical_formula()}",
        f"ndtset {3 if settings.bec else 1}",
        "chkprim 0",
        "chksymbreak 0",
        "acell 3*1.0 angstrom",
        "rprim",
        rows(atoms.cell[:]),
        f"natom {len(atoms)}",
        f"ntypat {len(species)}",
        "znucl " + " ".join(str(atomic_numbers[s]) for s in species),
        "typat " + " ".join(map(str, typat)),
        "xred",
        rows(atoms.get_scaled_positions(wrap=False)),
        f"ecut {settings.ecut}",
        f"ixc {settings.ixc}",
        f"ngkpt {kx} {ky} {kz}",
        "nshiftk 1",
        "shiftk " + " ".join(str(s) for s in settings.kpt_shift),
        f"nband {nocc + settings.extra_bands}",
        f"nstep {settings.nstep}",
        "occopt 1",
        f'pp_dirpath "{PSP_DIR}/"',
        'pseudos "' + ", ".join(settings.pseudos[s] for s in species) + '"',
        # dataset 1: ground state with forces and stress
        f"tolvrs1 {settings.tolvrs_scf}",
        "optforces1 1",
        "optstress1 1",
        "kptopt1 1",
    ]
    if settings.extra_bands:
        lines.append(f"nbdbuf {settings.extra_bands}")
    if settings.bec:
        lines += [
            # dataset 2: ddk (non-self-consistent)
            "iscf2 -3",
            "rfelfd2 2",
            "rfdir2 1 1 1",
            "getwfk2 1",
            f"tolwfr2 {settings.tolwfr_ddk}",
            "kptopt2 2",
            # dataset 3: electric-field response -> Z* (from electric field response) and eps_inf
            "rfelfd3 3",
            "rfdir3 1 1 1",
            "getwfk3 1",
            "getddk3 2",
            f"tolvrs3 {settings.tolvrs_efield}",
            "kptopt3 2",
        ]
    return "\n".join(lines) + "\n"


#: the ground-state wavefunctions of an interrupted SCF, kept in the work directory
CHECKPOINT = "checkpoint_WFK"
EXIT_REQUESTED = 'Exit has been requested from file "abinit.exit"'


def run_abinit(
    atoms: Atoms,
    settings: AbinitSettings,
    workdir: str | os.PathLike,
    nprocs: int = 2,
    timeout: float | None = None,
    checkpoint_s: float = 1800.0,
) -> Atoms:
    """Label one structure in ``workdir``; return it with labels and provenance.

    The ground-state SCF is checkpointed: every ``checkpoint_s`` seconds ABINIT is asked to stop
    (``chkexit``), its wavefunctions are kept as ``checkpoint_WFK`` and the run restarts from
    them, so a call after a kill continues from the last checkpoint (a restart costs about two
    SCF steps). The DFPT datasets are never interrupted. Raises :class:`LabelError` with the
    reason when ABINIT fails or the SCF does not converge.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    abi = write_input(atoms, settings)
    stamp = workdir / f"{CHECKPOINT}.input"  # the input the checkpoint belongs to
    if stamp.exists() and stamp.read_text() != abi:
        (workdir / CHECKPOINT).unlink(missing_ok=True)  # another structure or other settings
    _clear(workdir, keep=(CHECKPOINT, stamp.name))  # ABINIT never overwrites: a stale run must go
    resumed = (workdir / CHECKPOINT).exists()
    restarts, scf_steps = 0, 0
    t0 = time.perf_counter()
    while True:
        text = _abinit_once(abi, workdir, nprocs, checkpoint_s, t0, timeout)
        scf_steps += _scf_steps(text)
        if EXIT_REQUESTED not in text:
            break
        if not (workdir / "runo_DS1_WFK").exists():
            raise LabelError(f"ABINIT stopped for a checkpoint without wavefunctions in {workdir}")
        stamp.write_text(abi)
        os.replace(workdir / "runo_DS1_WFK", workdir / CHECKPOINT)
        restarts += 1
        if scf_steps > settings.nstep + 3 * restarts:  # a restart costs about two steps
            raise LabelError(f"SCF not converged in {scf_steps} steps (see {workdir})")
        _clear(workdir, keep=(CHECKPOINT, stamp.name))
    wall = time.perf_counter() - t0
    abo = workdir / "run.abo"
    if "not enough SCF cycles to converge" in text:
        raise LabelError(f"SCF not converged in nstep={settings.nstep} (see {abo})")
    (workdir / CHECKPOINT).unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    labelled = read_abinit_output(abo)
    result = atoms.copy()
    result.calc = None
    for name in ("energy", "stress", "epsilon_inf"):
        if name in labelled.info:
            result.info[name] = labelled.info[name]
    for name in ("forces", "born_charges"):
        if name in labelled.arrays:
            result.arrays[name] = labelled.arrays[name]
    if settings.bec and "born_charges" not in result.arrays:
        raise LabelError(f"no Born charges in {abo}")
    prov = json.loads(labelled.info["provenance"])
    prov.update(
        code_version=abinit_version(),
        functional=_functional_name(settings.ixc),
        pseudopotentials={
            s: settings.pseudos[s] for s in dict.fromkeys(atoms.get_chemical_symbols())
        },
        pseudopotential_note=", ".join(
            f"{s} {_pseudo_functional(settings.pseudos[s])}"
            for s in dict.fromkeys(atoms.get_chemical_symbols())
        )
        + f": generated with other functionals than the {_functional_name(settings.ixc)} used here",
        settings={k: v for k, v in asdict(settings).items() if k != "pseudos"},
        kmesh=list(settings.kmesh(atoms)),
        wall_time_s=round(wall, 1),
        nprocs=nprocs,
        scf_restarts=restarts,
        resumed_from_checkpoint=resumed,
    )
    result.info["provenance"] = json.dumps(prov)
    return result


def _clear(workdir: Path, keep: tuple[str, ...]) -> None:
    """Remove everything in ``workdir`` but the names in ``keep``."""
    for p in workdir.iterdir():
        if p.name not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _abinit_once(
    abi: str,
    workdir: Path,
    nprocs: int,
    checkpoint_s: float,
    t_start: float,
    timeout: float | None,
) -> str:
    """One ABINIT run of input ``abi`` (from the checkpoint when there is one); returns the .abo
    text."""
    text = abi + "chkexit 1\n"
    if (workdir / CHECKPOINT).exists():
        text += f'getwfk_filepath1 "{CHECKPOINT}"\n'
    (workdir / "run.abi").write_text(text)
    cmd = ["abinit", "run.abi"]
    if nprocs > 1:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(nprocs), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    abo = workdir / "run.abo"
    t0 = time.perf_counter()
    with open(workdir / "log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
        asked = False
        while proc.poll() is None:
            time.sleep(min(2.0, checkpoint_s / 5))
            now = time.perf_counter()
            if timeout is not None and now - t_start > timeout:
                proc.kill()
                proc.wait()
                raise LabelError(f"ABINIT exceeded {timeout:.0f} s")
            if not asked and now - t0 > checkpoint_s and abo.exists():
                if "== DATASET  2" not in abo.read_text(errors="replace"):  # still the SCF
                    (workdir / "abinit.exit").touch()
                    asked = True
    text = abo.read_text(errors="replace") if abo.exists() else ""
    if proc.returncode != 0 or not text:
        tail = (workdir / "log").read_text(errors="replace").strip().splitlines()[-3:]
        raise LabelError(f"ABINIT exited with {proc.returncode}: {' | '.join(tail)}")
    return text


def _scf_steps(abo_text: str) -> int:
    """Ground-state SCF steps of dataset 1 in an .abo text."""
    gs = abo_text.split("== DATASET  2")[0]
    return sum(1 for line in gs.splitlines() if line.startswith(" ETOT "))


def _pseudo_functional(name: str) -> str:
    """The functional a pseudopotential of abinit-data was generated with, from its file name."""
    return "PBE" if "_pbe_" in name.lower() else "LDA"  # PseudoDojo pw tables, HGH, Teter: LDA


def _functional_name(ixc: int) -> str:
    names = {PBESOL_LIBXC: "PBEsol", PBE_LIBXC: "PBE"}
    return f"{names.get(ixc, 'ixc')} (libxc ixc {ixc})"


def preset(name: str, **overrides) -> AbinitSettings:
    """A named preset, optionally with fields replaced."""
    if name not in PRESETS:
        raise BornfieldError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
