"""NYZC75 at PBE level: the label requests behind issue 12, in one reproducible script.

Every label goes into one label store (``mtpkit.active_learning.store.LabelStore``, SQLite);
``mtpkit label STORE`` computes the pending rows (GPAW, one per core, resumable after a kill).
This script only decides *what* to label and reads the results back:

``convergence``  GPAW settings study on three 37-atom configurations (a relaxed cell, a 600 K
                 CHGNet snapshot of it, the relaxed cell at +6 % volume) and, once ``anneal`` ran,
                 a second ordering: cutoff, k-points, LCAO, smearing and SCF tolerance against a
                 high-cutoff / dense-k reference.
``anneal``       anneal-and-quench of the 8 study structures with CHGNet (MTK NPT, FIRE + cell
                 filter, several seeds); minima written to ``minima/``, PBE single points of the
                 plain-relaxed and the annealed minimum of each requested at production settings.
``kmesh``        the k-point check in the campaign's own cell settings: the study's cells are different
                 supercells of one lattice (layered 6.9 x 7.1 x 22.5 Å, mixed 9.8 x 10.0 x 11.1 Å, the
                 convergence cell 13.8 x 7.35 x 10.1 Å), so one fixed mesh samples them unevenly.
``table``        the convergence table (Markdown) from the finished rows.
``ranking``      the 8 structures ranked by PBE energy of their annealed minima.
``heldout``      held-out snapshots for the done-when test: NVT MD of the campaign's cells at 500-650 K
                 in the minimum's cell with a given potential, requested as subset ``heldout`` (never
                 trained on).
``export``       the training labels (production settings, every subset but ``convergence`` and
                 ``heldout``, or the subsets given) as extxyz with per-frame provenance, the stress
                 re-corrected with the measured dE/d ecut instead of GPAW's setup estimate.
``ship``         the shipped potential folder (``mtpkit/data/nyzc75-pbe``): the campaign's final
                 potential as ``pot.almtp``, ``training.extxyz`` and ``heldout.extxyz`` (``export``'s
                 frames), ``manifest.json`` (counts, GPAW cost, errors, learning history, checksums)
                 and a README whose every number is read from those.

Usage (from the repository root)::

    python benchmarks/nyzc75-pbe/pbe_labels.py convergence --store runs/pbe/labels.db
    python benchmarks/nyzc75-pbe/pbe_labels.py anneal --store runs/pbe/labels.db
    mtpkit label runs/pbe/labels.db --workers 2          # hours; resumable
    python benchmarks/nyzc75-pbe/pbe_labels.py table --store runs/pbe/labels.db
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from ase.units import GPa

from mtpkit.active_learning.labellers import LabellerSpec
from mtpkit.active_learning.store import LabelStore
from mtpkit.io_utils import atomic_open, atomic_write_json, atomic_write_text

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parents[1].parent / "shared" / "reference" / "structures"
CELL = "NYZC75_P21n_37atoms_CHGNet-relaxed.cif"

#: production settings: the candidate the convergence study tests. Every PW label stores GPAW's setup
#: estimate of the Pulay stress (``extra.pulay_GPa``, ``extra.dedecut``); energies and forces do not
#: depend on it, and the stress is re-corrected exactly when the training set is exported
#: The k-point mesh is given as a density (points per Å^-1 of reciprocal length, 2π included: ASE's
#: ``kpts2sizeandoffsets``) because the study's cells are different supercells of one lattice: 2.0 gives
#: 1x2x2 in the convergence cell (13.8 x 7.35 x 10.1 Å), 2x2x1 in the layered cells (6.9 x 7.1 x 22.5 Å) and
#: 2x2x2 in the mixed cells (9.8 x 10.0 x 11.1 Å), at least 9 % from the next mesh in every cell. The fixed
#: 1x2x2 mesh used for the first minima labels left one k-point along the 6.9 Å axis of the layered cells:
#: 2.46 meV/atom and 0.13 GPa off the 2x2x1 mesh there (``kmesh``, RESULTS.md); those labels stay in the
#: store under their own settings and are not trained on.
PRODUCTION = {"mode": "pw", "mode_ecut": 400, "kpts": {"density": 2.0}, "xc": "PBE", "smearing_eV": 0.05,
              "pulay": "estimate"}
#: the settings of the convergence study and of the first minima labels (a fixed mesh)
FIXED_MESH = {**PRODUCTION, "kpts": [1, 2, 2]}
#: dE/d ecut of NYZC75 at 400 eV per atom (eV per eV), measured as (E(425) - E(375)) / 50 eV on the
#: relaxed 37-atom cell (rows convergence:relaxed:pw375/pw425): -0.0074777 eV/eV per cell, 1.55x
#: GPAW's setup estimate; with it the 400 eV stress matches 800 eV to 0.007 GPa (RESULTS.md)
DEDECUT_400_PER_ATOM = -2.021e-4


def gpaw(**changes) -> LabellerSpec:
    """GPAW spec: the production settings with ``changes``."""
    return _spec({**PRODUCTION, **changes})


def gpaw_fixed_mesh(**changes) -> LabellerSpec:
    """GPAW spec of the convergence study (fixed 1x2x2 mesh, in the convergence cell = density 2.0) with
    ``changes``: its rows keep the settings they were requested with."""
    return _spec({**FIXED_MESH, **changes})


def _spec(p: dict) -> LabellerSpec:
    if p.get("mode") == "lcao":
        for k in ("mode_ecut", "pulay"):
            p.pop(k, None)
    return LabellerSpec("gpaw", parameters=p)


#: (name, spec, priority) of the convergence study; lower priority is labelled first
STUDY = [
    ("pw400", gpaw_fixed_mesh(), 10), ("pw800", gpaw_fixed_mesh(mode_ecut=800), 10),
    ("pw400-k232", gpaw_fixed_mesh(kpts=[2, 3, 2]), 20),
    ("lcao-dzp", gpaw_fixed_mesh(mode="lcao", basis="dzp"), 30),
    # pw400 vs pw800 already settled the cutoff (0.07 meV/atom, 0.001 eV/Å): 500/600 eV go last
    ("pw500", gpaw_fixed_mesh(mode_ecut=500), 80), ("pw600", gpaw_fixed_mesh(mode_ecut=600), 85),
    ("pw375", gpaw_fixed_mesh(mode_ecut=375), 50), ("pw425", gpaw_fixed_mesh(mode_ecut=425), 50),
    ("pw300", gpaw_fixed_mesh(mode_ecut=300), 60), ("pw400-k111", gpaw_fixed_mesh(kpts=[1, 1, 1]), 60),
    ("pw400-fd0.01", gpaw_fixed_mesh(smearing_eV=0.01), 70),
    ("pw400-tight", gpaw_fixed_mesh(convergence={"energy": 1e-6, "density": 1e-6, "eigenstates": 1e-10}), 70),
]
#: settings each configuration gets (the second ordering and the strained cell get fewer)
PER_CONFIG = {
    "relaxed": [s[0] for s in STUDY],
    "snapshot600K": ["pw400", "pw800", "pw400-k232", "lcao-dzp", "pw500", "pw600", "pw400-k111"],
    "volume+6%": ["pw400", "pw800", "pw400-k232", "lcao-dzp", "pw500"],
    "other-ordering": ["pw400", "pw800", "pw400-k232", "lcao-dzp"],
}


def chgnet_calculator():
    from mtpkit.active_learning.labellers import make_calculator

    return make_calculator(LabellerSpec("chgnet"))


def convergence_configs(minima_dir: Path) -> dict[str, Atoms]:
    """The configurations of the study (the 'other-ordering' one only once ``anneal`` ran)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    relaxed = read(REFERENCE / CELL)
    relaxed.calc = None
    snap = relaxed.copy()
    snap.calc = chgnet_calculator()
    rng = np.random.default_rng(600)
    MaxwellBoltzmannDistribution(snap, temperature_K=600, rng=rng)
    Langevin(snap, 2 * units.fs, temperature_K=600, friction=0.02 / units.fs, rng=rng).run(300)
    snap = Atoms(snap.numbers, snap.positions, cell=snap.cell, pbc=True)
    strained = relaxed.copy()
    strained.set_cell(relaxed.cell * 1.06 ** (1 / 3), scale_atoms=True)
    out = {"relaxed": relaxed, "snapshot600K": snap, "volume+6%": strained}
    other = minima_dir / "mixed-TM_oct25_relaxed.extxyz"
    if other.is_file():
        out["other-ordering"] = read(other)
    return out


def cmd_convergence(args) -> None:
    store = LabelStore(args.store)
    specs = {name: (spec, prio) for name, spec, prio in STUDY}
    configs = convergence_configs(HERE / "minima")
    for cname, atoms in configs.items():
        for sname in PER_CONFIG[cname]:
            spec, prio = specs[sname]
            row = store.request(atoms, spec, source=f"convergence:{cname}:{sname}", subset="convergence",
                                priority=prio)
            store.reprioritize(row, prio)  # STUDY's order wins over the order of earlier requests
    print(json.dumps(store.counts(subset="convergence")))


def cmd_anneal(args) -> None:
    from mtpkit.campaign.relax_stage import anneal_quench, relax_one
    from mtpkit.structures.builders import to_atoms
    from mtpkit.structures.representatives import representative_orderings

    out_dir = HERE / "minima"
    out_dir.mkdir(exist_ok=True)
    summary_path = out_dir / "minima.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    store = LabelStore(args.store)
    calc = chgnet_calculator()
    for name, ordering in representative_orderings().items():
        if args.only and name not in args.only:
            continue
        if name not in summary:
            start = to_atoms(ordering.structure())
            relaxed, _, info = relax_one(start, calc, steps=400, fmax=0.02, cell=True, pressure_GPa=0.0,
                                         log_path=Path("/dev/null"))
            best, cands = anneal_quench(relaxed, calc, temperature_K=args.temperature, steps=args.steps,
                                        timestep_fs=2.0, seeds=list(range(1, args.seeds + 1)), fmax=0.02,
                                        quench_steps=600)
            for tag, at in (("relaxed", relaxed), ("annealed", best)):
                with atomic_open(out_dir / f"{name}_{tag}.extxyz", "w") as fh:
                    write(fh, at, format="extxyz")
            summary[name] = {"tm_class": ordering.tm_label, "octahedral_occupancy": ordering.oct_occupancy,
                             "relaxed": {"energy_per_atom_eV": info["after"]["energy_eV"] / len(relaxed),
                                         "volume_A3": info["after"]["volume_A3"]},
                             "candidates": cands}
            atomic_write_json(summary_path, summary)
            gain = 1000 * (summary[name]["relaxed"]["energy_per_atom_eV"] - min(c["energy_per_atom_eV"]
                                                                                 for c in cands))
            print(f"{name}: CHGNet anneal+quench {gain:.2f} meV/atom below the plain relaxation", flush=True)
        for tag in ("relaxed", "annealed"):
            at = read(out_dir / f"{name}_{tag}.extxyz")
            store.request(at, gpaw(), source=f"minimum:{name}:{tag}", subset="minima", priority=15)
    print(json.dumps(store.counts(subset="minima")))


#: (structure file stem in minima/, mesh, priority): the production mesh (1x2x2) is compared with the mesh of
#: the same k-spacing as in the convergence cell and with a denser reference
KMESH = [("layered-TM_oct25_annealed", [2, 2, 1], 5), ("layered-TM_oct25_annealed", [3, 3, 2], 6),
         ("mixed-TM_oct25_annealed", [2, 2, 2], 5)]


def cmd_kmesh(args) -> None:
    store = LabelStore(args.store)
    for name, mesh, prio in KMESH:
        atoms = read(HERE / "minima" / f"{name}.extxyz")
        tag = "k" + "".join(map(str, mesh))
        row = store.request(atoms, gpaw_fixed_mesh(kpts=mesh), source=f"kmesh:{name}:{tag}", subset="kmesh",
                            priority=prio)
        store.reprioritize(row, prio)
    print(json.dumps(store.counts(subset="kmesh")))


def _rows_by_source(store: LabelStore, subset: str, settings: LabellerSpec | None = None) -> dict[str, object]:
    """Finished rows of ``subset`` by source (only those under ``settings`` when given)."""
    return {r.keys["source"]: r for r in store.rows(subset=subset, status="ok", settings=settings)}


def convergence_errors(rows: dict, sname: str, ref: str) -> tuple[list[float], list[float], list[float]]:
    """Errors of the convergence study's settings ``sname`` against ``ref`` over its configurations:
    relative energies to the relaxed cell (meV/atom), force RMS (eV/Å), largest stress component (GPa)."""
    def get(c, s):
        return rows.get(f"convergence:{c}:{s}")

    errs_e, errs_f, errs_s = [], [], []
    for c in PER_CONFIG:
        a, r = get(c, sname), get(c, ref)
        if a is None or r is None:
            continue
        fa, fr = a.atoms.get_forces(), r.atoms.get_forces()
        errs_f.append(float(np.sqrt(((fa - fr) ** 2).mean())))
        errs_s.append(float(np.abs(a.atoms.get_stress() - r.atoms.get_stress()).max() / GPa))
        if c != "relaxed" and get("relaxed", sname) and get("relaxed", ref):
            n = len(a.atoms)
            de = (a.atoms.get_potential_energy() - get("relaxed", sname).atoms.get_potential_energy()) - \
                 (r.atoms.get_potential_energy() - get("relaxed", ref).atoms.get_potential_energy())
            errs_e.append(1000 * abs(de) / n)
    return errs_e, errs_f, errs_s


def cmd_table(args) -> None:
    store = LabelStore(args.store)
    rows = _rows_by_source(store, "convergence")

    def get(c, s):
        return rows.get(f"convergence:{c}:{s}")

    print("| settings | s/label (relaxed) | ΔE rel. err (meV/atom) | F RMS err (eV/Å) | σ max err (GPa) |")
    print("|---|---:|---:|---:|---:|")
    for sname, _, _ in STUDY:
        ref = "pw400" if sname.startswith("pw400-") else "pw800"
        errs_e, errs_f, errs_s = convergence_errors(rows, sname, ref)
        t = get("relaxed", sname)
        fmt = lambda v: f"{max(v):.3g}" if v else "–"  # noqa: E731
        print(f"| {sname} (vs {ref}) | {t.keys['wall_s']:.0f} | {fmt(errs_e)} | {fmt(errs_f)} | {fmt(errs_s)} |"
              if t else f"| {sname} (vs {ref}) | – | {fmt(errs_e)} | {fmt(errs_f)} | {fmt(errs_s)} |")


def cmd_ranking(args) -> None:
    store = LabelStore(args.store)
    rows = _rows_by_source(store, "minima", gpaw_fixed_mesh() if args.fixed_mesh else gpaw())
    summary = json.loads((HERE / "minima" / "minima.json").read_text())
    table = []
    for name, info in summary.items():
        for tag in ("relaxed", "annealed"):
            r = rows.get(f"minimum:{name}:{tag}")
            if r is not None:
                e = r.atoms.get_potential_energy() / len(r.atoms)
                table.append((name, tag, e, r.atoms.get_volume(), info["tm_class"], info["octahedral_occupancy"]))
    if not table:
        sys.exit("no finished minima labels yet")
    e0 = min(t[2] for t in table)
    print("| structure | geometry | E − E_min (meV/atom, PBE) | V (Å³) |")
    print("|---|---|---:|---:|")
    for name, tag, e, v, _, _ in sorted(table, key=lambda t: t[2]):
        print(f"| {name} | {tag} | {1000 * (e - e0):.2f} | {v:.1f} |")


def _nvt_snapshots(work: Atoms, args, T: float, seed: int) -> list[Atoms]:
    """``args.per`` frames ``args.every`` steps apart after ``args.equilibrate`` steps of NVT at ``T``, in
    LAMMPS's frame (cell and positions both from it); RuntimeError where γ passes ``args.break_gamma``."""
    from al_diagnostics import start_md, unwrapped_positions

    from mtpkit.md.structure import box_from_lammps

    lmp = start_md(work, args.potential, T, "nvt", seed, break_gamma=args.break_gamma)

    def run(steps: int) -> None:  # the plugin ends a run early at the break, with γ still that high
        lmp.command(f"run {steps} post no")
        if (g := float(lmp.extract_variable("g"))) > args.break_gamma:
            raise RuntimeError(f"γ {g:.3g} above {args.break_gamma:g}")

    try:
        run(args.equilibrate)
        snaps = []
        for _ in range(args.per):
            run(args.every)
            # LAMMPS holds the cell rotated into its lower-triangular frame: positions and cell both from it
            snap = Atoms(work.numbers, unwrapped_positions(lmp, len(work)), cell=box_from_lammps(lmp), pbc=True)
            snap.wrap()
            snaps.append(snap)
        return snaps
    finally:
        lmp.close()


def cmd_heldout(args) -> None:
    """Held-out snapshots at each temperature of each structure, requested as PBE labels (subset
    ``heldout``, never trained on), from NVT (LAMMPS, 2 fs) of the 37-atom cell in the annealed minimum's
    cell. Not NPT of the small cell: a cell one formula unit wide swells and flows where the production box
    stays a crystal (RESULTS.md, session 10); the minimum's cell leaves the sampled volume independent of
    the potential being tested, whose own box swells where it has not learned (session 11). (Averaging
    the cell of an NPT run of the production box instead stopped on LAMMPS's "tilted box too far" in the
    layered box at 600 K, session 11.)"""

    store = LabelStore(args.store)
    for name in args.structures:
        start = read(HERE / "minima" / f"{name}.extxyz")
        for T in args.temperatures:
            seed = int(np.random.SeedSequence([int(T), *map(ord, name)]).generate_state(1)[0]) % 900_000 + 1
            work = start.copy()
            for attempt in range(3):  # a run that passes the γ bound or loses atoms starts again, next seed
                try:
                    snaps = _nvt_snapshots(work, args, T, seed + 1 + 1000 * attempt)
                    break
                except Exception as exc:  # noqa: BLE001  # LAMMPS raises a bare Exception
                    print(f"{name} at {T:g} K, seed {seed + 1 + 1000 * attempt}: {str(exc).splitlines()[0]}")
            else:
                continue
            for k, snap in enumerate(snaps):
                store.request(snap, gpaw(), source=f"heldout:{name}:{T:g}K:{k}", subset="heldout", priority=50)
            print(f"{name} at {T:g} K: {len(snaps)} snapshot(s) at V {work.get_volume():.1f} Å³ "
                  f"({work.get_volume() / start.get_volume() - 1:+.1%} from the minimum)", flush=True)
    print(json.dumps(store.counts(subset="heldout")))


def measured_pulay_stress(atoms: Atoms, extra: dict, ecut_eV: float = 400.0) -> np.ndarray:
    """The stress correction to add to a stored label (Voigt, eV/Å^3): remove the setup estimate the
    labeller applied (``extra["pulay_GPa"]``), apply 2/3 · ecut · dE/d ecut / V with the measured
    :data:`DEDECUT_400_PER_ATOM`."""
    applied = float(extra.get("pulay_GPa", 0.0)) * GPa
    wanted = 2.0 / 3.0 * ecut_eV * DEDECUT_400_PER_ATOM * len(atoms) / atoms.get_volume()
    return np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]) * (wanted - applied)


def export_rows(store: LabelStore, subsets: list[str] | None) -> list[Atoms]:
    """Production-settings labels of ``store`` (``subsets``, else all but convergence and heldout), each
    with energy, forces, re-corrected stress and its provenance in ``atoms.info``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for r in store.rows(status="ok", settings=gpaw()):
        subset = r.keys["subset"]
        if (subsets and subset not in subsets) or (not subsets and subset in ("convergence", "heldout")):
            continue
        a = r.atoms
        res = a.calc.results
        stress = np.asarray(res["stress"]) + measured_pulay_stress(a, r.data.get("extra", {}))
        frame = Atoms(a.numbers, a.positions, cell=a.cell, pbc=True)
        frame.calc = SinglePointCalculator(frame, energy=res["energy"], forces=res["forces"], stress=stress)
        frame.info = {"source": r.keys["source"], "subset": subset, "store_row": r.id,
                      "config_id": r.keys["config_id"], "settings_id": r.keys["settings_id"],
                      "code": r.keys.get("code", ""), "wall_s": float(r.keys.get("wall_s", 0.0)),
                      "labeller": json.dumps(r.data["settings"]["parameters"], sort_keys=True),
                      "pulay_dedecut_per_atom": DEDECUT_400_PER_ATOM}
        out.append(frame)
    return out


def cmd_export(args) -> None:
    frames = export_rows(LabelStore(args.store), args.subsets)
    if not frames:
        sys.exit("no finished labels at production settings to export")
    with atomic_open(args.out, "w") as fh:
        write(fh, frames, format="extxyz")
    by = _by_subset(frames)
    print(f"{args.out}: {len(frames)} labels ({', '.join(f'{k} {v}' for k, v in sorted(by.items()))})")


def _by_subset(frames: list[Atoms]) -> dict[str, int]:
    """Exported frames per store subset."""
    from collections import Counter

    return dict(Counter(f.info["subset"] for f in frames))


SPECIES = ["Na", "Y", "Zr", "Cl"]


def potential_errors(potential: Path, frames: list[Atoms]) -> dict:
    """:func:`mtpkit.potentials.metrics.error_metrics` of ``potential`` on ``frames`` (their stress
    as given: re-corrected by :func:`export_rows`), plus the mean stress-diagonal error (GPa)."""
    from mtpkit import load_potential
    from mtpkit.potentials.labels import extract_labels, predict
    from mtpkit.potentials.metrics import error_metrics
    from mtpkit.potentials.species import atom_types

    mtp = load_potential(potential, species=SPECIES).mtp
    types = [atom_types(a, SPECIES, mtp.species_count, "frame") for a in frames]
    pred = predict(mtp, frames, types)
    out = error_metrics(pred, labels := extract_labels(frames))
    diag = []
    for k, a in enumerate(frames):  # ASE stress = -virial / V; diagonal errors, GPa
        ours = -np.diag(pred.virial[k]) / a.get_volume() / GPa
        diag.append(ours - np.asarray(a.calc.results["stress"][:3]) / GPa)
    out["stress_diagonal_mean_error_gpa"] = float(np.mean(diag)) if diag else float("nan")
    out["n_frames"] = len(labels)
    return out


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fmt(x: float, digits: int) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def cmd_ship(args) -> None:
    """Assemble the shipped folder from the store and a finished (or, with --allow-unfinished, a
    running) campaign; every number of its README comes from the manifest written beside it."""
    import subprocess

    from mtpkit.active_learning.engine import final_potential, learning_history

    learn = args.campaign / "03_active_learning"
    history = learning_history(learn)
    if not history.get("finished") and not args.allow_unfinished:
        sys.exit(f"{learn}: active learning has not finished ({history.get('stop_reason') or 'running'}); "
                 "ship a finished campaign (or pass --allow-unfinished for a trial folder)")
    pot = final_potential(learn)
    if pot.suffix != ".almtp":
        sys.exit(f"{pot}: the final potential has no active set (.almtp); nothing to grade γ with")
    store = LabelStore(args.store)
    train, held = export_rows(store, None), export_rows(store, ["heldout"])
    if not train:
        sys.exit(f"{args.store}: no finished labels at production settings")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "pot.almtp", "wb") as fh:
        fh.write(pot.read_bytes())
    for name, frames in (("training.extxyz", train), ("heldout.extxyz", held)):
        if frames:
            with atomic_open(out / name, "w") as fh:
                write(fh, frames, format="extxyz")
        elif (out / name).exists():
            (out / name).unlink()
    structures = _ship_structures(out / "structures")
    by_subset = _by_subset(train)
    walls = np.array([f.info["wall_s"] for f in train + held])
    its = history["iterations"]
    rungs: dict[str, int] = {}
    learned: list[str] = []
    for it in its:
        for run in it.get("runs", []):
            key = f"{run['temperature_K']:g} K" + (" (296-atom box)" if run.get("md_size") else "")
            rungs[key] = max(rungs.get(key, 0), it["iteration"])
            if it.get("converged") and key not in learned:
                learned.append(key)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE, check=False).stdout.strip()
    e400, f400, _ = convergence_errors(_rows_by_source(store, "convergence"), "pw400", "pw800")
    fitted_on = next((it["n_train"] for it in its if f"iter_{it['iteration']:03d}" == pot.parent.name), None)
    manifest = {
        "potential": {"file": "pot.almtp", "species": SPECIES, "from": str(pot.relative_to(args.campaign)),
                      "fitted_on_configurations": fitted_on,
                      "sha256": _sha256(out / "pot.almtp")},
        "labeller": {"code": train[0].info["code"], "parameters": json.loads(train[0].info["labeller"]),
                     "pulay_dedecut_per_atom": DEDECUT_400_PER_ATOM,
                     "vs_800eV": {"relative_energy_max_mev_per_atom": max(e400, default=None),
                                  "force_rms_max_eV_per_A": max(f400, default=None)}},
        "training": {"file": "training.extxyz", "frames": len(train), "by_subset": by_subset,
                     "sha256": _sha256(out / "training.extxyz"),
                     "errors": potential_errors(out / "pot.almtp", train)},
        "heldout": ({"file": "heldout.extxyz", "frames": len(held), "sha256": _sha256(out / "heldout.extxyz"),
                     "errors": potential_errors(out / "pot.almtp", held)} if held else None),
        "structures": {"folder": "structures", "files": structures},
        "labelling_cost": {"labels": int(walls.size), "core_hours": float(walls.sum() / 3600),
                           "median_s": float(np.median(walls))},
        "active_learning": {"iterations": len(its) - 1, "finished": bool(history.get("finished")),
                            "stop_reason": history.get("stop_reason") or "",
                            "last_iteration_of_each_rung": rungs, "rungs_learned": learned,
                            "labels_added": history.get("labels_added")},
        "commit": commit,
    }
    atomic_write_json(out / "manifest.json", manifest)
    atomic_write_text(out / "README.md", ship_readme(manifest))
    print(f"{out}: {len(train)} training and {len(held)} held-out frames; potential {pot}")


def _ship_structures(folder: Path) -> list[str]:
    """Copy the campaign's starting structures (``campaign.toml``'s ``structures.files``: the annealed
    minima production starts from) into ``folder``; the file names, sorted."""
    import tomllib

    files = tomllib.loads((HERE / "campaign.toml").read_text())["structures"]["files"]
    folder.mkdir(parents=True, exist_ok=True)
    for rel in files:
        src = HERE / rel
        atomic_write_text(folder / src.name, src.read_text())
    return sorted(Path(rel).name for rel in files)


def ship_readme(m: dict) -> str:
    """The shipped folder's README from its manifest (no number is typed in by hand)."""
    p = m["labeller"]["parameters"]
    tr, ho, al, cost = m["training"], m["heldout"], m["active_learning"], m["labelling_cost"]
    conv = m["labeller"]["vs_800eV"]

    def errors(e: dict) -> str:
        return (f"| {e['n_frames']} | {_fmt(e['energy_rmse_centered_mev_per_atom'], 2)} "
                f"| {_fmt(e['energy_mean_error_mev_per_atom'], 2)} | {_fmt(e['force_rmse'], 3)} "
                f"| {_fmt(e['stress_rmse_gpa'], 3)} | {_fmt(e['stress_diagonal_mean_error_gpa'], 3)} |")

    lines = [
        "# NYZC75 at PBE level: a Moment Tensor Potential and its training set",
        "",
        "Na2.25Y0.25Zr0.75Cl6 (layered-TM and mixed-TM Y/Zr orderings, 25 and 50 % octahedral Na), after",
        "Sebti et al., J. Mater. Chem. A 10, 21565 (2022). Written by `benchmarks/nyzc75-pbe/pbe_labels.py ship`",
        f"at commit {m['commit']} from the label store `benchmarks/nyzc75-pbe/labels.db` and the campaign",
        "`benchmarks/nyzc75-pbe/campaign.toml`; the numbers below are `manifest.json`'s.",
        "",
        "## Files",
        f"- `pot.almtp`: the campaign's {'final' if al['finished'] else 'current'} potential "
        f"({m['potential']['from']}"
        + (f", fitted on {n} configurations" if (n := m["potential"]["fitted_on_configurations"]) else "") + "), "
        "MLIP-3 format with its active",
        f"  set (extrapolation grade γ); species order {', '.join(m['potential']['species'])} (types 0-3):",
        "  `mtpkit.load_potential(path, species=['Na', 'Y', 'Zr', 'Cl'])`.",
        f"- `training.extxyz`: every PBE label of the campaign at production settings, {tr['frames']} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(tr['by_subset'].items()))}; labels made after the potential's fit"
        " are the next fit's);",
        "  per frame: `source` (what asked for it), `subset`, `store_row`, `config_id`, `settings_id`, `code`,",
        "  `wall_s`, `labeller` (the GPAW parameters).",
        (f"- `heldout.extxyz`: {ho['frames']} PBE labels of MD snapshots never trained on." if ho else
         "- no held-out set yet."),
        f"- `structures/`: the annealed minima the campaign learned from and production starts from "
        f"({', '.join(m['structures']['files'])}).",
        "",
        "## Labels",
        f"{m['labeller']['code']}, {p.get('xc')}, plane waves {p.get('mode_ecut')} eV, k-point density "
        f"{p.get('kpts', {}).get('density')} Å⁻¹ (2π included), Fermi-Dirac {p.get('smearing_eV')} eV;",
        "settings from the convergence study in `benchmarks/RESULTS.md` (its rows are in the store: relative",
        f"energies within {_fmt(conv['relative_energy_max_mev_per_atom'], 2)} meV/atom and forces within "
        f"{_fmt(conv['force_rms_max_eV_per_A'], 4)} eV/Å RMS of 800 eV).",
        "The stress in these files is corrected for the Pulay stress with the measured",
        f"dE/d ecut ({m['labeller']['pulay_dedecut_per_atom']:.4g} eV/eV per atom); the potential was trained on the",
        "store's stress, which carries GPAW's smaller setup estimate instead: the mean stress-diagonal error",
        "below shows the offset (run NPT at that pressure offset, as the campaign's production does, or refit).",
        f"Cost: {cost['labels']} labels, {cost['core_hours']:.1f} core-hours of GPAW (median {cost['median_s']:.0f} s",
        "per 37-atom label on the shared 2-core machine of the campaign).",
        "",
        "## Errors of `pot.almtp`",
        "| set | frames | E RMSE, mean removed (meV/atom) | E mean error (meV/atom) | F RMSE (eV/Å) "
        "| S RMSE (GPa) | S diagonal mean error (GPa) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        "| training " + errors(tr["errors"]),
    ]
    if ho:
        lines.append("| held-out " + errors(ho["errors"]))
    lines += [
        "",
        "## Active learning",
        f"{al['iterations']} iterations; finished: {al['finished']}; stop reason: {al['stop_reason'] or 'n/a'}.",
        *([] if al["finished"] else [
            "**Active learning has not finished**: this is the campaign's current potential, shipped so that the",
            "main job can start from PBE labels. Trust it only at the rungs listed below; the finished campaign",
            "replaces it."]),
        "Last iteration at each exploration rung: "
        + ", ".join(f"{k}: {v}" for k, v in al["last_iteration_of_each_rung"].items()) + ".",
        "Rungs learned (every run below γ_stop, probes within their bounds): "
        + (", ".join(al["rungs_learned"]) or "none") + ".",
        "",
        "## Reproduce",
        "```",
        "mkdir -p runs/pbe && cp benchmarks/nyzc75-pbe/labels.db runs/pbe/labels.db",
        "mtpkit learn benchmarks/nyzc75-pbe/campaign.toml --output runs/pbe/campaign   # reuses every stored label",
        "python benchmarks/nyzc75-pbe/pbe_labels.py ship --store runs/pbe/labels.db --campaign runs/pbe/campaign",
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("convergence", "anneal", "kmesh", "table", "ranking", "export", "heldout", "ship"):
        p = sub.add_parser(name)
        p.add_argument("--store", required=True, type=Path)
        if name == "ranking":
            p.add_argument("--fixed-mesh", action="store_true",
                           help="the first labels' fixed 1x2x2 mesh instead of the production k-point density")
        if name == "heldout":
            p.add_argument("--potential", required=True, help="MTP (.mtp/.almtp) whose MD makes the snapshots")
            p.add_argument("--structures", nargs="+", required=True, help="stems of files in minima/")
            p.add_argument("--temperatures", nargs="+", type=float, default=[500.0, 550.0, 600.0, 650.0])
            p.add_argument("--equilibrate", type=int, default=2500, help="NVT steps of 2 fs before the first")
            p.add_argument("--every", type=int, default=2500, help="steps between snapshots")
            p.add_argument("--per", type=int, default=1, help="snapshots per structure and temperature")
            p.add_argument("--break-gamma", type=float, default=5.0,
                           help="a run whose γ passes this starts again with the next seed (3 tries)")
        if name == "export":
            p.add_argument("--out", required=True, type=Path, help="extxyz file to write")
            p.add_argument("--subsets", nargs="*", help="subsets to export (default: all but convergence, heldout)")
        if name == "ship":
            p.add_argument("--campaign", required=True, type=Path, help="the campaign folder (runs/pbe/campaign)")
            p.add_argument("--out", type=Path, default=HERE.parents[1] / "mtpkit" / "data" / "nyzc75-pbe")
            p.add_argument("--allow-unfinished", action="store_true",
                           help="ship the current potential of a campaign whose learning has not finished "
                                "(its README says so and names the rungs learned)")
        if name == "anneal":
            p.add_argument("--temperature", type=float, default=300.0, help="anneal temperature (K)")
            p.add_argument("--steps", type=int, default=1500, help="MTK NPT steps of 2 fs per seed")
            p.add_argument("--seeds", type=int, default=2)
            p.add_argument("--only", nargs="*", help="structure names (default: all 8)")
    args = ap.parse_args()
    commands = {"convergence": cmd_convergence, "anneal": cmd_anneal, "kmesh": cmd_kmesh, "table": cmd_table,
                "ranking": cmd_ranking, "export": cmd_export, "heldout": cmd_heldout,
                "ship": cmd_ship}
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
