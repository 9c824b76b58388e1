"""ABINIT driver: SCF (energy, forces, stress), then DFPT ddk and electric-field response (Z*, ε∞).

One structure, one directory; the calculation runs as seven ABINIT runs under ``mpirun`` (ground
state, then ddk and field response per field direction), each kept when finished, and each
restarted from checkpointed (first-order) wavefunctions when it is interrupted. Energy, forces
and stress are parsed by :func:`bornfield.data.importers.read_abinit_output`, Z* and ε∞ from the
DDB files by :func:`bornfield.data.importers.born_charges_from_ddb`. Settings come in named
presets.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.data.importers import born_charges_from_ddb, read_abinit_output, read_ddb_elements
from bornfield.errors import BornfieldError, DataError
from bornfield.parallel import die_with_parent

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


class LabelStopped(BornfieldError):
    """Labelling stopped on request (:func:`request_stop`); the structure stays queued."""


_STOP = threading.Event()


def request_stop() -> None:
    """Stop labelling soon, keeping the work in flight: the stage in flight is asked to write
    its checkpoint at the end of its current step (a ground-state SCF in its first
    ``checkpoint_steps`` steps, or a DFPT stage in its first :data:`DFPT_CHECKPOINT_STEPS`, is
    killed, keeping its previous checkpoint), and :class:`LabelStopped` is raised. Meant for a
    SIGTERM handler (a batch system's warning before the end of a job, or a session that
    ends)."""
    _STOP.set()


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
    # SCF-only labels (bec False) stop on forces when this is set (ABINIT's toldff, Ha/Bohr:
    # the largest force change between steps below it twice in a row); DFPT needs tolvrs_scf
    toldff_scf: float | None = None
    # ground-state density mixing factor (ABINIT's diemix; None: ABINIT's default, 1 for
    # insulators). Only the path to the SCF solution depends on it, not the solution.
    diemix: float | None = None
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
    # SCF-only labels stop on forces: on a 20-atom CaTiO3 MD snapshot 20 instead of 29 steps,
    # forces within 0.2 meV/Å and stress within 0.0002 GPa of tolvrs 1e-10
    # (bench/results/dft_scf_toldff_catio3-20.md)
    # and mix the density at half ABINIT's default: 17, 20 and 17 steps instead of 20, 22 and 20
    # on three snapshots (bench/results/dft_scf_mixing.md)
    "production": AbinitSettings(toldff_scf=1e-5, diemix=0.5),
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


def _common_input(atoms: Atoms, settings: AbinitSettings) -> list[str]:
    """Input lines shared by every dataset: structure, basis, k-mesh, bands, pseudopotentials."""
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))
    missing = [s for s in species if s not in settings.pseudos]
    if missing:
        raise LabelError(f"no pseudopotential configured for {', '.join(missing)}")
    pseudos = [PSP_DIR / settings.pseudos[s] for s in species]
    for p in pseudos:
        if not p.is_file():
            raise LabelError(f"pseudopotential {p} not found (apt-get install abinit-data)")
    nocc = int(math.ceil(sum(zion(atoms, settings)) / 2 - 1e-9))
    typat = [species.index(s) + 1 for s in atoms.get_chemical_symbols()]
    from ase.data import atomic_numbers

    kx, ky, kz = settings.kmesh(atoms)

    def rows(a: np.ndarray) -> str:
        return "\n".join("  " + " ".join(f"{v:.12f}" for v in r) for r in np.atleast_2d(a))

    lines = [
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
    ]
    return lines


def _scf_lines(settings: AbinitSettings, dataset: str = "") -> list[str]:
    """The ground state's stopping rule and mixing as ABINIT input lines (for ``dataset``)."""
    if settings.toldff_scf is None or settings.bec:
        lines = [f"tolvrs{dataset} {settings.tolvrs_scf}"]
    else:
        lines = [f"toldff{dataset} {settings.toldff_scf}"]
    if settings.diemix is not None:
        lines.append(f"diemix{dataset} {settings.diemix}")
    return lines


def zion(atoms: Atoms, settings: AbinitSettings) -> list[float]:
    """Valence charge of each atom's pseudopotential."""
    z = {s: valence_electrons(PSP_DIR / settings.pseudos[s]) for s in set(atoms.symbols)}
    return [z[s] for s in atoms.get_chemical_symbols()]


def write_input(atoms: Atoms, settings: AbinitSettings) -> str:
    """The whole calculation as one multi-dataset ABINIT input: SCF (+ ddk + electric field
    when ``settings.bec``). It identifies a labelling job; :func:`stage_inputs` runs it in parts."""
    lines = [
        f"# bornfield: {atoms.get_chemical_formula()}",
        f"ndtset {3 if settings.bec else 1}",
        *_common_input(atoms, settings),
        # dataset 1: ground state with forces and stress
        *_scf_lines(settings, dataset="1"),
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


def stage_inputs(atoms: Atoms, settings: AbinitSettings) -> dict[str, str]:
    """The calculation of :func:`write_input` as separate ABINIT runs, in order: ``gs`` (SCF,
    forces, stress), ``ddk1..3`` (one k-derivative each, from the ground state) and
    ``efield1..3`` (the response to a field along x, y, z, from the ground state and the three
    ddk; its DDB holds that row of Z* and ε∞: the off-diagonal ε∞ needs the other ddk).

    Each run is one perturbation, so a kill loses at most one; the parts give the same Z* as
    the single run (5e-11 e apart when measured; the test asks 1e-6 e). Inputs are read as
    ``in_*`` files (``indata_prefix``).
    """
    common = [f"# bornfield: {atoms.get_chemical_formula()}", *_common_input(atoms, settings)]
    if settings.extra_bands:
        common.append(f"nbdbuf {settings.extra_bands}")
    gs = [*_scf_lines(settings), "optforces 1", "optstress 1", "kptopt 1"]
    out = {"gs": "\n".join(common + gs) + "\n"}
    if settings.bec:
        read = ["irdwfk 1", 'indata_prefix "in"', "kptopt 2"]
        for kind, lines in (
            ("ddk", ["iscf -3", "rfelfd 2", f"tolwfr {settings.tolwfr_ddk}"]),
            ("efield", ["irdddk 1", "rfelfd 3", f"tolvrs {settings.tolvrs_efield}"]),
        ):
            for j in range(3):
                rfdir = " ".join("1" if i == j else "0" for i in range(3))
                out[f"{kind}{j + 1}"] = "\n".join([*common, *read, f"rfdir {rfdir}", *lines]) + "\n"
    return out


#: the ground-state wavefunctions of an interrupted SCF, kept in the ``gs`` stage directory
#: (an interrupted DFPT stage keeps its first-order wavefunctions as the ``in_1WF<pert>`` it
#: restarts from)
CHECKPOINT = "checkpoint_WFK"
#: beside it: wall and CPU seconds, SCF steps and restarts of the runs that led to it, which a
#: resumed stage (another process, e.g. the next session) adds to its record
CHECKPOINT_RECORD = "checkpoint.json"
#: DFPT steps before a stop request checkpoints a stage (a periodic checkpoint waits for
#: ``checkpoint_steps``, as the ground state's does): its restart from the first-order
#: wavefunctions costs about two steps of a field response and none of a ddk (5-atom CaTiO3,
#: test preset: efield 8 steps after a checkpoint at step 7 of 13; ddk 9 after 7 of 16)
DFPT_CHECKPOINT_STEPS = 3
#: seconds between checkpoints of a run. Each restarts ABINIT: a 20-atom CaTiO3 SCF on 2 ranks lost
#: about two steps of the density mixer's history and spent ~6 min in its first step after the
#: restart against ~2 min per step, i.e. ~20 % of a 30-min interval. A session's or batch
#: system's SIGTERM checkpoints anyway (:func:`request_stop`); this guards against SIGKILL.
CHECKPOINT_S = 7200.0
#: SCF steps a periodic checkpoint waits at most for an SCF about to converge
POSTPONE_STEPS = 4
#: one line per postponed checkpoint, in the stage directory
POSTPONED = "postponed.log"
#: one row of ABINIT's SCF (or DFPT) table in an .abo file
_ETOT_ROW = re.compile(r"^[ -]ETOT\s+\d+.*$", flags=re.M)
EXIT_REQUESTED = 'Exit has been requested from file "abinit.exit"'
#: ABINIT's closing line: CPU seconds summed over all MPI ranks, and wall seconds
_OVERALL_TIME = re.compile(r"^\+Overall time at end \(sec\) : cpu=\s*([\d.]+)", flags=re.M)
#: the input of the whole calculation, kept in the work directory: finished stages are reused
#: only when it is unchanged
STAMP = "input.abi"
DONE = "done.json"


@dataclass(frozen=True)
class _Restart:
    """How a stage restarts from its checkpoint."""

    output: str  # the wavefunctions ABINIT writes when it stops
    kept: str  # their name as the checkpoint, in the stage directory
    line: str  # the input line that reads them


def _pert(stage: str, natom: int) -> int:
    """ABINIT's index of a DFPT stage's first-order wavefunction files, 3 (ipert − 1) + idir:
    ddk j (ipert natom + 1) 3 natom + j, field j (ipert natom + 2) 3 natom + 3 + j."""
    kind, j = stage[:-1], int(stage[-1])
    return 3 * natom + j + {"ddk": 0, "efield": 3}[kind]


def _restart(stage: str, natom: int) -> _Restart:
    """The checkpoint of a stage: the ground state's wavefunctions, or the first-order ones of
    its perturbation, read as ``in_1WF<pert>``."""
    if stage == "gs":
        return _Restart("runo_WFK", CHECKPOINT, f'getwfk_filepath "{CHECKPOINT}"')
    pert = _pert(stage, natom)
    return _Restart(f"runo_1WF{pert}", f"in_1WF{pert}", "ird1wf 1")


def _stage_links(stage: str, natom: int) -> dict[str, str]:
    """Input files of a stage (``in_*`` names) -> the earlier stages' outputs."""
    if stage == "gs":
        return {}
    links = {"in_WFK": "../gs/runo_WFK"}
    if stage.startswith("efield"):
        for j in (1, 2, 3):
            p = _pert(f"ddk{j}", natom)
            links[f"in_1WF{p}"] = f"../ddk{j}/runo_1WF{p}"
    return links


def run_abinit(
    atoms: Atoms,
    settings: AbinitSettings,
    workdir: str | os.PathLike,
    nprocs: int = 2,
    timeout: float | None = None,
    checkpoint_s: float = CHECKPOINT_S,
    log: Callable[[str], None] | None = None,
    checkpoint_steps: int = 8,
) -> Atoms:
    """Label one structure in ``workdir``; return it with labels and provenance.

    The calculation runs as the stages of :func:`stage_inputs`, each in its own subdirectory;
    a finished stage is kept, so a call after a kill repeats only the stage in flight. Each
    stage is also checkpointed: every ``checkpoint_s`` seconds ABINIT is asked to stop
    (``chkexit``), its wavefunctions are kept (``gs/checkpoint_WFK``; a DFPT stage's first-order
    ones as ``in_1WF<pert>``) and the run restarts from them. A restart loses the density
    mixer's history (about two SCF steps), so a checkpoint also waits for ``checkpoint_steps``
    steps of the run (a 20-atom step takes minutes). :func:`request_stop` checkpoints the stage
    in flight (once it has done those steps, or :data:`DFPT_CHECKPOINT_STEPS` of a DFPT run;
    before, the previous checkpoint stays) and stops. The
    wall and CPU time, steps and restarts of the runs before a checkpoint are kept beside it
    (``checkpoint.json``), so a frame resumed in another process records its whole cost (a run
    killed without a checkpoint is not counted: its work is redone). Raises
    :class:`LabelError` with the reason when ABINIT fails or an SCF does not converge.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stages = stage_inputs(atoms, settings)
    whole = write_input(atoms, settings) + "".join(stages.values()) + abinit_version()
    stamp = workdir / STAMP
    if not stamp.exists() or stamp.read_text() != whole:
        _clear(workdir, keep=())  # another structure, other settings or an older layout
        stamp.write_text(whole)
    records = {s: _done(workdir / s) for s in stages}
    resumed = any(records.values()) or any(
        (workdir / s / _restart(s, len(atoms)).kept).exists() for s in stages
    )
    t0 = time.perf_counter()
    ran: set[str] = set()
    for name, abi in stages.items():
        d = workdir / name
        links = _stage_links(name, len(atoms))
        needs = {target.split("/")[1] for target in links.values()}
        if records[name] is not None and not needs & ran:
            continue  # finished, from inputs that are still the same
        missing = sorted(needs - ran - {n for n in needs if _outputs_exist(d, links, n)})
        if missing:  # outputs removed (tidied): nothing finished can be trusted
            if ran:
                raise LabelError(f"stage {name} in {workdir}: inputs from {missing} missing")
            _clear(workdir, keep=(STAMP,))
            return run_abinit(atoms, settings, workdir, nprocs, timeout, checkpoint_s, log,
                              checkpoint_steps)  # fmt: skip
        left = None if timeout is None else timeout - (time.perf_counter() - t0)
        try:
            records[name] = _run_stage(
                abi, d, nprocs, checkpoint_s, left, settings.nstep, links,
                restart=_restart(name, len(atoms)), checkpoint_steps=checkpoint_steps,
                stop_steps=checkpoint_steps if name == "gs" else DFPT_CHECKPOINT_STEPS,
                toldff=None if settings.bec else settings.toldff_scf,
            )  # fmt: skip
        except LabelStopped:
            _STOP.clear()  # honoured: a later call runs again
            raise
        ran.add(name)
        if log:
            r = records[name]
            log(f"{name} ({list(stages).index(name) + 1}/{len(stages)}): {r['wall_s']:.0f} s, "
                f"{r['scf_steps']} steps")  # fmt: skip
    labelled = read_abinit_output(workdir / "gs" / "run.abo")
    result = atoms.copy()
    result.calc = None
    result.arrays.pop("born_charges", None)  # labels the input carried are not this run's
    result.info.pop("epsilon_inf", None)
    for name in ("energy", "stress"):
        result.info[name] = labelled.info[name]
    result.arrays["forces"] = labelled.arrays["forces"]
    if settings.bec:
        elements = {}
        try:
            for j in (1, 2, 3):
                elements |= read_ddb_elements(workdir / f"efield{j}" / "runo_DDB")
            z, eps = born_charges_from_ddb(elements, atoms.cell[:], np.array(zion(atoms, settings)))
        except (OSError, DataError) as exc:
            raise LabelError(f"no Born charges from the DDBs in {workdir}: {exc}") from None
        result.arrays["born_charges"] = z
        result.info["epsilon_inf"] = eps
    cpu = {k: _stage_cpu(workdir / k, r) for k, r in records.items()}
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
        wall_time_s=round(sum(r["wall_s"] for r in records.values()), 1),
        stage_wall_s={k: r["wall_s"] for k, r in records.items()},
        # CPU seconds over all ranks: unlike the wall time, not inflated by other jobs
        cpu_time_s=None if None in cpu.values() else round(sum(cpu.values()), 1),
        stage_cpu_s=cpu,
        nprocs=nprocs,
        scf_restarts=records["gs"]["restarts"],
        stage_restarts={k: r["restarts"] for k, r in records.items()},
        scf_checkpoints_postponed=records["gs"].get("checkpoints_postponed", 0),
        resumed_from_checkpoint=resumed,
    )
    result.info["provenance"] = json.dumps(prov)
    return result


def _outputs_exist(d: Path, links: dict[str, str], stage: str) -> bool:
    """Whether the files that directory ``d`` links from ``stage`` are there (``d`` itself need
    not exist yet: the ``..`` of a link target is resolved on the path, not by the kernel)."""
    return all(
        Path(os.path.normpath(d / t)).exists() for t in links.values() if t.split("/")[1] == stage
    )


def tidy(workdir: str | os.PathLike) -> None:
    """Drop wavefunctions, densities and potentials of a finished structure; keep inputs,
    outputs, logs and DDBs."""
    for p in Path(workdir).rglob("*"):
        if p.is_symlink() or (
            p.is_file() and re.search(r"(WFK|1WF\d*|DEN\d*|POT\d*)(\.nc)?$", p.name)
        ):
            p.unlink()


def _run_stage(
    abi: str,
    d: Path,
    nprocs: int,
    checkpoint_s: float,
    timeout: float | None,
    nstep: int,
    links: dict[str, str],
    restart: _Restart,
    checkpoint_steps: int = 8,
    toldff: float | None = None,
    stop_steps: int | None = None,
) -> dict:
    """Run one stage in directory ``d`` to completion, restarting from its checkpoints; return
    its wall time, SCF (or DFPT) steps and restarts. ``toldff``: the SCF's stopping rule on
    forces (Ha/Bohr), if it has one; ``stop_steps``: see :func:`_abinit_once`."""
    d.mkdir(exist_ok=True)
    kept = (restart.kept, CHECKPOINT_RECORD, POSTPONED)
    _clear(d, keep=kept)  # ABINIT never overwrites: a stale run must go
    before = _checkpoint_record(d, restart.kept)  # the runs that led to the checkpoint
    what = "SCF" if restart.kept == CHECKPOINT else "DFPT"
    restarts, steps, cpu = before["restarts"], before["scf_steps"], before["cpu_s"]
    t_start = time.perf_counter()
    t0 = t_start - before["wall_s"]
    while True:
        for name, target in links.items():
            (d / name).symlink_to(target)
        left = None if timeout is None else timeout - (time.perf_counter() - t_start)
        text = _abinit_once(abi, d, nprocs, checkpoint_s, left, checkpoint_steps, toldff,
                            restart, stop_steps)  # fmt: skip
        steps += _scf_steps(text)
        cpu += _cpu_seconds(text) or 0.0
        if EXIT_REQUESTED not in text:
            break
        if not (d / restart.output).exists():
            raise LabelError(f"ABINIT stopped for a checkpoint without wavefunctions in {d}")
        os.replace(d / restart.output, d / restart.kept)
        restarts += 1  # the next run, in this process or a later one, restarts the stage
        _write_json(d / CHECKPOINT_RECORD, {
            "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu, 1),
            "scf_steps": steps, "restarts": restarts})  # fmt: skip
        if _STOP.is_set():
            raise LabelStopped(f"stopped on request; the run in {d} is checkpointed")
        if steps > nstep + 3 * restarts:  # a restart costs about two steps
            raise LabelError(f"{what} not converged in {steps} steps (see {d})")
        _clear(d, keep=kept)
    if "not enough SCF cycles to converge" in text:
        raise LabelError(f"{what} not converged in nstep={nstep} (see {d / 'run.abo'})")
    postponed = (d / POSTPONED).read_text().count("\n") if (d / POSTPONED).exists() else 0
    rec = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu, 1),
           "scf_steps": steps, "restarts": restarts,
           "checkpoints_postponed": postponed}  # fmt: skip
    _write_json(d / DONE, rec)  # a stage is either done or not
    (d / restart.kept).unlink(missing_ok=True)
    (d / CHECKPOINT_RECORD).unlink(missing_ok=True)
    return rec


def _write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` to ``path`` atomically (a kill leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _checkpoint_record(d: Path, kept: str = CHECKPOINT) -> dict:
    """What the runs before the checkpoint ``kept`` in ``d`` did (zeros without a checkpoint,
    or for one written before these records were kept)."""
    zero = {"wall_s": 0.0, "cpu_s": 0.0, "scf_steps": 0, "restarts": 0}
    if not (d / kept).exists():
        return zero
    try:
        return zero | json.loads((d / CHECKPOINT_RECORD).read_text())
    except (OSError, ValueError):
        return zero


def stage_steps(d: Path) -> tuple[int, int]:
    """SCF (or DFPT) steps of the unfinished stage in directory ``d``: all so far, and those
    of the runs before its checkpoint (the record exists only beside one). A run that stopped
    for the checkpoint is in the record already, until the next run replaces its output."""
    before = _checkpoint_record(d, CHECKPOINT_RECORD)["scf_steps"]
    abo = d / "run.abo"
    text = abo.read_text(errors="replace") if abo.exists() else ""
    return before + (0 if EXIT_REQUESTED in text else _scf_steps(text)), before


def _done(d: Path) -> dict | None:
    """The record of a finished stage, or None."""
    try:
        return json.loads((d / DONE).read_text())
    except (OSError, ValueError):
        return None


def _clear(workdir: Path, keep: tuple[str, ...]) -> None:
    """Remove everything in ``workdir`` but the names in ``keep``."""
    for p in workdir.iterdir():
        if p.name not in keep:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _abinit_once(
    abi: str,
    workdir: Path,
    nprocs: int,
    checkpoint_s: float,
    timeout: float | None,
    checkpoint_steps: int = 1,
    toldff: float | None = None,
    restart: _Restart | None = None,
    stop_steps: int | None = None,
) -> str:
    """One ABINIT run of input ``abi`` (from the checkpoint when there is one); returns the .abo
    text. Asks ABINIT to stop (``chkexit``) after ``checkpoint_s`` seconds and
    ``checkpoint_steps`` SCF steps, or at the end of its step after :func:`request_stop` when
    ``checkpoint_s`` is finite and the run has done ``checkpoint_steps`` steps; otherwise a stop
    request kills the run (an earlier checkpoint stays). A periodic checkpoint waits while an
    SCF that stops on forces (``toldff``) is about to converge (:func:`_nearly_converged`), for
    at most ``POSTPONE_STEPS`` steps: a restart costs more steps than it would have left.
    ``restart``: where the checkpoint is (default: the ground state's); ``stop_steps``: the
    steps a stop request waits for instead of ``checkpoint_steps``."""
    if _STOP.is_set():
        raise LabelStopped(f"stopped on request before {workdir}")
    if timeout is not None and timeout <= 0:
        raise LabelError(f"ABINIT exceeded the time limit before {workdir}")
    restart = restart or _restart("gs", 0)
    text = abi + "chkexit 1\n"
    if (workdir / restart.kept).exists():
        text += restart.line + "\n"
    (workdir / "run.abi").write_text(text)
    cmd = ["abinit", "run.abi"]
    if nprocs > 1:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(nprocs), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    abo = workdir / "run.abo"
    t0 = time.perf_counter()
    with open(workdir / "log", "w") as log:
        # its own session: a SIGTERM to this process group reaches bornfield only, which then
        # asks ABINIT for a checkpoint (it still dies with bornfield: die_with_parent)
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=die_with_parent, start_new_session=True)  # fmt: skip
        asked, due_at = False, None  # due_at: SCF steps when a periodic checkpoint fell due
        while proc.poll() is None:
            # not _STOP.wait: a SIGTERM handler's _STOP.set() could deadlock on its lock
            time.sleep(max(0.05, min(0.2, checkpoint_s / 5)))
            now = time.perf_counter()
            if timeout is not None and now - t0 > timeout:
                _kill(proc)
                raise LabelError(f"ABINIT exceeded the time limit in {workdir}")
            if _STOP.is_set() and math.isinf(checkpoint_s):
                _kill(proc)
                raise LabelStopped(f"stopped on request; {workdir} will run again")
            if asked or not abo.exists() or not (_STOP.is_set() or now - t0 > checkpoint_s):
                continue
            now_text = abo.read_text(errors="replace")
            steps = _scf_steps(now_text)
            if steps >= (
                checkpoint_steps if stop_steps is None or not _STOP.is_set() else stop_steps
            ):
                if not _STOP.is_set() and _nearly_converged(now_text, toldff):
                    if due_at is None and POSTPONE_STEPS > 0:
                        due_at = steps
                        with open(workdir / POSTPONED, "a") as f:
                            f.write(f"checkpoint postponed at SCF step {steps}\n")
                    if due_at is not None and steps - due_at < POSTPONE_STEPS:
                        continue
                (workdir / "abinit.exit").touch()
                asked = True
            elif _STOP.is_set():
                # the wavefunctions of an SCF's first steps restart it worse than atomic
                # densities (20-atom CaTiO3: density residual 1.1e5 at the first step from a
                # 6-step checkpoint, 6.3e3 from scratch): lose these steps, keep any older one
                _kill(proc)
                raise LabelStopped(f"stopped on request; {workdir} will run again")
    text = abo.read_text(errors="replace") if abo.exists() else ""
    if proc.returncode != 0 or not text:
        tail = (workdir / "log").read_text(errors="replace").strip().splitlines()[-3:]
        raise LabelError(f"ABINIT exited with {proc.returncode}: {' | '.join(tail)}")
    return text


def _kill(proc: subprocess.Popen) -> None:
    """Kill ABINIT and, under mpirun, its ranks (the run has its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _nearly_converged(abo_text: str, toldff: float | None, factor: float = 10.0) -> bool:
    """Whether the last SCF step's largest force change (``diffor``) is within ``factor`` ×
    ``toldff`` (Ha/Bohr): ABINIT stops once it is below ``toldff`` twice in a row. A 20-atom
    CaTiO3 checkpoint taken at 9.3e-6 against toldff 1e-5 cost three more steps (≈ 15 min)."""
    if toldff is None or "diffor" not in abo_text:
        return False
    rows = _ETOT_ROW.findall(abo_text)
    try:
        return bool(rows) and float(rows[-1].split()[-2]) < factor * toldff
    except ValueError:  # a Fortran exponent without its E (1.0-100): checkpoint as usual
        return False


def _cpu_seconds(abo_text: str) -> float | None:
    """CPU seconds of one ABINIT run, summed over its MPI ranks (its closing line), or None."""
    m = _OVERALL_TIME.search(abo_text)
    return None if m is None else float(m.group(1))


def _stage_cpu(d: Path, record: dict) -> float | None:
    """A finished stage's CPU seconds: from its record, or (a record written before CPU time
    was kept) from its output when that run was the stage's only one."""
    if "cpu_s" in record:
        return record["cpu_s"]
    if record.get("restarts", 0) or not (d / "run.abo").exists():
        return None
    return _cpu_seconds((d / "run.abo").read_text(errors="replace"))


def _scf_steps(abo_text: str) -> int:
    """SCF (or DFPT) iterations in an .abo text."""
    return len(_ETOT_ROW.findall(abo_text))


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
