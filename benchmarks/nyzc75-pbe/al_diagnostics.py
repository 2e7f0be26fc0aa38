"""Diagnostics of the PBE active-learning campaign: why the exploration breaks, what a potential
does in NPT, and whether a stored label is reproduced.

    python benchmarks/nyzc75-pbe/al_diagnostics.py history --campaign runs/pbe/campaign
    python benchmarks/nyzc75-pbe/al_diagnostics.py grades --campaign runs/pbe/campaign --store runs/pbe/labels.db
    python benchmarks/nyzc75-pbe/al_diagnostics.py npt --potential P.almtp \
        --structure benchmarks/nyzc75-pbe/minima/layered-TM_oct50_annealed.extxyz --supercell 4,0,0,0,2,0,0,0,1
    python benchmarks/nyzc75-pbe/al_diagnostics.py relabel --store runs/pbe/labels.db --row 156

``history``: the campaign's iterations as a table: temperature, the largest grade of the exploration
runs, the median and longest time a run lasted before γ passed the break threshold, the labels added
and the fit made after them (configurations, training RMSE).

``grades``: each iteration's candidates graded against the potential and active set that explored
them (the previous iteration's fit): the species of the most extrapolative atom of each candidate,
and the atoms above γ = 5; then, for the newest fit, how many training sites each species has
against the parameters only that species' sites touch (the active set must span those from that
species' sites alone).

``npt``: an NPT run (LAMMPS with the mtp plugin, triclinic barostat at 0 bar as in the campaign's
exploration; ``--ensemble`` iso/aniso/nvt for other barostats or a fixed cell) with the extrapolation
grade computed every 5 steps and no break: volume, pressure diagonal (bar), temperature and the
largest γ per 0.2 ps block, and when γ first passes 5 and 10.

``refit``: fit the training labels of the store (rows up to ``--upto``) from a campaign potential, or
from a fresh one of another ``--level``/``--radial-basis-size``, with other training settings
(``--max-iter``, ``--stress-weight``), into ``--out``; ``errors``: a potential's
errors on those labels: centred energy RMSE (meV/atom), the mean of PBE − MTP pressure (GPa; all
labels, and cells larger than ``--large`` Å^3) and the least-squares slope of MTP against PBE for the
deviatoric stress diagonal and the shear stress.

``probe``: frames drawn at random (seeded, every dumped frame equally likely, no run's starting frame)
from an iteration's exploration runs, requested as labels of subset ``probe`` at the campaign's settings:
the error of the exploring potential on the states it visits, whatever their grade (``errors --subset
probe --per-frame`` with the previous iteration's potential). ``request``: chosen frames of an ``npt
--dump`` the same way. The campaign trains on both subsets, like any label.

``relabel``: recompute one stored GPAW label with the settings stored with it; prints the CPU time
and the largest differences in energy (eV), force (eV/Å) and stress (GPa) from the stored label.
Units: K, ps, Å^3, bar, GPa.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

SPECIES = ["Na", "Y", "Zr", "Cl"]


def _iteration_dirs(campaign: Path) -> list[Path]:
    return sorted((campaign / "03_active_learning").glob("iter_[0-9][0-9][0-9]"))


def cmd_history(args) -> None:
    from mtpkit.active_learning.engine import learning_history

    history = learning_history(args.campaign / "03_active_learning")
    print("| iteration | T (K) | max γ of the runs | run time before γ > break (ps): median / longest "
          "| probes: exploring potential's RMSE E (meV/atom) / F (eV/Å) "
          "| labels added | fit after: configurations | train RMSE E (meV/atom) / F (eV/Å) |")
    print("|---:|---:|---:|---|---|---:|---:|---|")
    for it in history["iterations"]:
        times = [r["time_ps"] for r in it.get("runs") or []]
        errors = it.get("errors") or {}
        train = errors.get("train") or {}
        span = f"{np.median(times):.2f} / {max(times):.2f}" if times else "–"
        fit = (f"{train['energy_rmse_mev_per_atom']:.2f} / {train['force_rmse']:.3f}" if train else "–")
        pe = (it.get("probes") or {}).get("errors")
        probes = f"{pe['energy_rmse_mev_per_atom']:.2f} / {pe['force_rmse']:.3f}" if pe else "–"
        print(f"| {it['iteration']} | {it.get('temperature_K') or '–'} | {it.get('max_gamma') or 0:.3g} | {span} "
              f"| {probes} | {it.get('n_labelled') or 0} | {errors.get('n_train') or '–'} | {fit} |")
    if history.get("finished"):
        print(f"\nfinished: {history.get('stop_reason')}")


def cmd_grades(args) -> None:
    from ase.io import read

    from mtpkit.active_learning.active_set import load_npz
    from mtpkit.active_learning.grades import grade_images
    from mtpkit.potentials.mtp_io import read_mtp

    dirs = _iteration_dirs(args.campaign)
    print("| iteration | candidates | species of the max-γ atom | atoms with γ > 5 | max γ |")
    print("|---:|---:|---|---|---:|")
    for prev, cur in itertools.pairwise(dirs):
        cand = cur / "candidates.extxyz"
        if not cand.exists() or not (prev / "pot.mtp").exists():
            continue
        images = read(cand, ":")
        g = grade_images(read_mtp(prev / "pot.mtp"), load_npz(prev / "active_set.npz"), images, SPECIES)
        top, high = Counter(), Counter()
        for atoms, per_atom in zip(images, g.per_atom):
            sym = np.array(atoms.get_chemical_symbols())
            top[str(sym[int(np.argmax(per_atom))])] += 1
            high.update(str(s) for s in sym[per_atom > 5.0])
        fmt = lambda c: ", ".join(f"{s} {c[s]}" for s in SPECIES if c[s]) or "none"  # noqa: E731
        number = int(cur.name.split("_")[1])
        print(f"| {number} | {len(images)} | {fmt(top)} | {fmt(high)} | {g.config.max():.1f} |")
    newest = next((d for d in reversed(dirs) if (d / "pot.mtp").exists()), None)
    if newest is not None and args.store is not None:
        _species_blocks(newest, args.store)


def species_blocks(mtp, images: list) -> dict[str, dict[str, int]]:
    """For each species: its ``sites`` in ``images``, the number of ``parameters`` of ``mtp`` that only
    sites of that species touch (nonzero site-energy derivative), and the ``rank`` of those columns
    over its sites. The active set must span those directions from that species' sites alone."""
    from mtpkit.active_learning.grades import site_rows
    from mtpkit.potentials import core

    compiled = core.compile_mtp(mtp)
    rows: dict[int, list[np.ndarray]] = {k: [] for k in range(len(SPECIES))}
    for atoms in images:
        types = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()], dtype=np.int32)
        block = site_rows(compiled, atoms, types)
        for k in rows:
            rows[k].append(block[types == k])
    stacked = {k: np.vstack(v) for k, v in rows.items()}
    touched = {k: np.abs(v).max(axis=0) > 0 for k, v in stacked.items()}
    out = {}
    for k, s in enumerate(SPECIES):
        others = np.zeros(mtp.n_params, bool)
        for j in rows:
            if j != k:
                others |= touched[j]
        own = touched[k] & ~others
        rank = int(np.linalg.matrix_rank(stacked[k][:, own])) if own.any() else 0
        out[s] = {"sites": int(stacked[k].shape[0]), "parameters": int(own.sum()), "rank": rank}
    return out


def _species_blocks(folder: Path, store_path: Path) -> None:
    """The table of :func:`species_blocks` for the fit in ``folder`` on the store's training labels."""
    from mtpkit.potentials.mtp_io import read_mtp

    n_train = json.loads((folder / "fit.json").read_text()).get("n_train")
    blocks = species_blocks(read_mtp(folder / "pot.mtp"), _training_labels(store_path, None))
    print(f"\n{folder.name} (fit on {n_train} configurations); sites of the store's training labels now:")
    print("| species | training sites | parameters only its sites touch | rank of that block | sites per parameter |")
    print("|---|---:|---:|---:|---:|")
    for s, b in blocks.items():
        print(f"| {s} | {b['sites']} | {b['parameters']} | {b['rank']} | {b['sites'] / max(b['parameters'], 1):.1f} |")


def _parse_matrix(text: str | None) -> np.ndarray | None:
    if not text:
        return None
    values = [int(v) for v in text.split(",")]
    if len(values) != 9:
        raise SystemExit(f"--supercell: 9 integers (row-major 3x3), got {len(values)}")
    return np.array(values).reshape(3, 3)


def start_md(atoms, potential: str, temperature: float, ensemble: str, seed: int, block: int = 100,
             break_gamma: float = 1e12):
    """A LAMMPS instance (mtpkit plugin, 2 fs) ready to run ``atoms`` at ``temperature`` (K): NVT
    (``ensemble = "nvt"``) or NPT at 0 bar with the barostat ``ensemble`` (iso, aniso, tri), γ every 5
    steps in ``v_g`` (above ``break_gamma`` the plugin ends the run early, with ``v_g`` still that high; by
    default never), volume, pressure diagonal and T averaged per ``block`` steps in fix ``av``, unwrapped
    positions in compute ``xu`` (:func:`unwrapped_positions`)."""
    from ase.io.lammpsdata import write_lammps_data

    from mtpkit.md.lammps_env import load_plugin, new_lammps

    lmp = new_lammps()
    load_plugin(lmp)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "structure.data"
        write_lammps_data(data, atoms, specorder=SPECIES, masses=True)
        for c in ["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p",
                  f"read_data {data}", "timestep 0.002", "neighbor 1.0 bin",
                  f"pair_style mtp {potential} extrapolation_control every 5 break_threshold {break_gamma:g}",
                  "pair_coeff * * " + " ".join(SPECIES), "compute g all pair mtp", "variable g equal c_g[1]",
                  (f"fix f all nvt temp {temperature} {temperature} 0.2" if ensemble == "nvt" else
                   f"fix f all npt temp {temperature} {temperature} 0.2 {ensemble} 0.0 0.0 2.0"),
                  f"velocity all create {temperature} {seed} mom yes rot no dist gaussian loop geom",
                  "compute pr all pressure thermo_temp", "variable v equal vol",
                  "variable pxx equal c_pr[1]", "variable pyy equal c_pr[2]", "variable pzz equal c_pr[3]",
                  "variable t equal temp", "thermo_style custom step pe temp press vol", f"thermo {block}",
                  f"fix av all ave/time 5 {block // 5} {block} v_v v_pxx v_pyy v_pzz v_t",
                  "compute xu all property/atom xu yu zu"]:
            lmp.command(c)
    return lmp


def unwrapped_positions(lmp, n: int) -> np.ndarray:
    """Compute ``xu`` of :func:`start_md` (Å, LAMMPS's frame) for the ``n`` atoms in the order of the data
    file (LAMMPS sorts atoms in memory)."""
    order = np.argsort(lmp.numpy.extract_atom("id")[:n])
    return np.array(lmp.numpy.extract_compute("xu", 1, 2), dtype=float)[order]


def cmd_npt(args) -> None:
    from ase.build import make_supercell
    from ase.io import read

    from mtpkit.md.structure import box_from_lammps

    atoms = read(args.structure)
    matrix = _parse_matrix(args.supercell)
    if matrix is not None:
        atoms = make_supercell(atoms, matrix)
    steps = round(args.ps * 500)  # 2 fs
    block = 100  # 0.2 ps
    lmp = start_md(atoms, args.potential, args.temperature, args.ensemble, args.seed, block)
    xs, cells, grades = [], [], []  # unwrapped positions (Å), cell rows (Å) and max γ, one per block
    v0 = atoms.get_volume()
    print(f"{len(atoms)} atoms, V0 {v0:.1f} Å^3, {args.temperature:g} K, {args.ps:g} ps")
    print("| t (ps) | V / V0 | pxx, pyy, pzz (bar) | T (K) | max γ |")
    print("|---:|---:|---|---:|---:|")
    first: dict[float, float | None] = {5.0: None, 10.0: None}
    stopped = None
    for k in range(steps // block):
        t = (k + 1) * block * 0.002  # ps at the end of this block
        gmax = 0.0
        try:
            for _ in range(block // 5):
                lmp.command("run 5 post no")
                gmax = max(gmax, float(lmp.extract_variable("g")))
        except Exception as exc:  # noqa: BLE001  # e.g. the barostat tilting the box too far
            stopped = f"LAMMPS stopped in the block ending at {t:.1f} ps: {exc}"
            break
        for thr in first:
            if first[thr] is None and gmax > thr:
                first[thr] = t
        av = [lmp.extract_fix("av", 0, 1, i) for i in range(5)]
        xs.append(unwrapped_positions(lmp, len(atoms)))
        cells.append(box_from_lammps(lmp))
        grades.append(gmax)
        if k % args.every == 0 or k == steps // block - 1:
            pressure = f"{av[1]:.0f}, {av[2]:.0f}, {av[3]:.0f}"
            print(f"| {t:.1f} | {av[0] / v0:.3f} | {pressure} | {av[4]:.0f} | {gmax:.2f} |")
    lmp.close()
    when = {thr: "never" if t is None else f"{t:.1f} ps" for thr, t in first.items()}
    tail = f" ({stopped.splitlines()[0]})" if stopped else ""
    print(f"γ first above 5: {when[5.0]}; above 10: {when[10.0]}{tail}")
    if len(xs) >= 4:
        from mtpkit.analysis.framework import framework_check_positions

        fc = framework_check_positions(np.array(xs), np.array(cells), atoms.get_chemical_symbols(), block * 0.002)
        msd = ", ".join(f"{sp} {v:.2f}" for sp, v in fc.msd_A2.items())
        print(f"host: {fc.state} (MSD at {fc.lag_ps:.1f} ps, Å^2: {msd}; Cl kept by their metal "
              f"{fc.same_centre:.3f}; volume {fc.volume_change:+.3f})")
    if args.dump:
        _write_blocks(args.dump, atoms, xs, cells, grades, block * 0.002)


def _write_blocks(path: Path, atoms, xs: list, cells: list, grades: list, block_ps: float) -> None:
    """Every block's last frame (wrapped into its cell) as extxyz, with its time (ps) and max γ."""
    from ase import Atoms
    from ase.io import write

    frames = []
    for k, (x, h, g) in enumerate(zip(xs, cells, grades)):
        a = Atoms(atoms.get_chemical_symbols(), positions=x, cell=h, pbc=True)
        a.wrap()
        a.info.update(time_ps=round((k + 1) * block_ps, 6), max_gamma=float(g))
        frames.append(a)
    write(path, frames, format="extxyz")


def _training_labels(store_path: Path, upto: int | None, subset: str | None = None) -> list:
    """The finished labels at the campaign's settings (those of the store's ``al`` rows): the
    training set (every subset the campaign trains on), or only ``subset``."""
    from mtpkit.active_learning.engine import NOT_TRAINED
    from mtpkit.active_learning.store import LabelStore

    store = LabelStore(store_path)
    settings = {r.keys["settings_id"] for r in store.rows(status="ok", subset="al")}
    return [r.atoms for r in store.rows(status="ok", subset=subset)
            if (subset is not None or r.keys["subset"] not in NOT_TRAINED) and r.keys["settings_id"] in settings
            and (upto is None or r.id <= upto)]


def _campaign_spec(store):
    """The labeller settings of the store's finished ``al`` rows (the campaign's)."""
    from mtpkit.active_learning.label_queue import spec_from_settings

    done = next(store.rows(status="ok", subset="al"), None)
    if done is None:
        raise SystemExit(f"{store.path}: no finished 'al' row to take the campaign's labeller settings from")
    return spec_from_settings(done.data["settings"])


def cmd_probe(args) -> None:
    from mtpkit.active_learning.candidates import draw_probes
    from mtpkit.active_learning.engine import probe_sources
    from mtpkit.active_learning.store import LabelStore

    explore = args.campaign / "03_active_learning" / f"iter_{args.iteration:03d}" / "explore"
    dumps = [("/".join(p.parent.relative_to(explore).parts), p) for p in sorted(explore.glob("*/T*/r*/traj.dump"))]
    if not dumps:
        raise SystemExit(f"{explore}: no exploration trajectories (traj.dump)")
    picked = draw_probes(dumps, args.n, args.seed, SPECIES)
    store = LabelStore(args.store) if args.store else None
    spec = _campaign_spec(store) if store else None
    print(f"{len(picked)} frames drawn from {len(dumps)} runs of iteration {args.iteration} (seed {args.seed})")
    for a, source in zip(picked, probe_sources(args.iteration, picked), strict=True):
        if store is None:
            print(f"{source}: V {a.get_volume():.1f} Å^3")
            continue
        rid = store.request(a, spec, source=source, subset=args.subset, priority=args.priority)
        print(f"row {rid}: {source} (V {a.get_volume():.1f} Å^3)")


def cmd_request(args) -> None:
    from ase import Atoms
    from ase.io import read

    from mtpkit.active_learning.store import LabelStore

    store = LabelStore(args.store)
    spec = _campaign_spec(store)
    frames = {round(float(a.info["time_ps"]), 6): a for a in read(args.frames, index=":")}
    for t in (round(float(x), 6) for x in args.times.split(",")):
        if t not in frames:
            raise SystemExit(f"{args.frames}: no frame at {t:g} ps "
                             f"(blocks end at {min(frames):g}, ... {max(frames):g} ps)")
        a = frames[t]
        rid = store.request(Atoms(a.numbers, a.positions, cell=a.cell, pbc=True), spec,
                            source=f"{args.subset}:{args.frames.stem}:{t:g}ps", subset=args.subset,
                            priority=args.priority)
        print(f"row {rid}: {args.frames.name} at {t:g} ps "
              f"(V {a.get_volume():.1f} Å^3, max γ {a.info['max_gamma']:.2f})")


def cmd_refit(args) -> None:
    from mtpkit.active_learning.fit import Template, fit_potential
    from mtpkit.potentials.mtp_io import read_mtp
    from mtpkit.potentials.train_config import TrainConfig

    images = _training_labels(args.store, args.upto)
    init = read_mtp(args.init) if args.init else None
    template = Template(args.level, args.radial_basis_size, 1.9, 5.0)
    m = fit_potential(images, init, SPECIES, template=template,
                      training=TrainConfig(max_iter=args.max_iter, stress_weight=args.stress_weight),
                      seed=2026, folder=args.out)
    t = m["train"]
    print(f"{len(images)} labels, {m['iterations']} iterations ({m['stop_reason']}), {m['fit_wall_s']:.0f} s: "
          f"E RMSE {t['energy_rmse_mev_per_atom']:.3f} meV/atom, F RMSE {t['force_rmse']:.4f} eV/Å, "
          f"S RMSE {t['stress_rmse_gpa']:.3f} GPa -> {args.out}")


def cmd_errors(args) -> None:
    from mtpkit.potentials.labels import extract_labels, predict
    from mtpkit.potentials.metrics import error_metrics, paired_values
    from mtpkit.potentials.mtp_io import read_mtp
    from mtpkit.potentials.species import atom_types

    images = _training_labels(args.store, args.upto, args.subset)
    mtp = read_mtp(args.potential)
    types = [atom_types(a, SPECIES, mtp.species_count, "training label") for a in images]
    pred, labels = predict(mtp, images, types), extract_labels(images)
    if args.per_frame:
        print("| source | V (Å^3) | E MTP − PBE (meV/atom) | pressure PBE / MTP (GPa) | F RMSE (eV/Å) |")
        print("|---|---:|---:|---|---:|")
        from ase.units import GPa

        for k, a in enumerate(images):
            # virial = -V * stress (eV), so the pressure is trace(virial) / 3V
            p_ref, p_mtp = (np.trace(v[k]) / (3 * labels.volume[k]) / GPa for v in (labels.virial, pred.virial))
            de = (pred.energy[k] - labels.energy[k]) / labels.natoms[k] * 1000
            df = np.sqrt(((pred.forces[k] - labels.forces[k]) ** 2).mean())
            print(f"| {a.info.get('source', k)} | {labels.volume[k]:.1f} | {de:+.2f} | {p_ref:.3f} / {p_mtp:.3f} "
                  f"| {df:.3f} |")
    metrics = error_metrics(pred, labels)  # the fit's own definitions (energy RMSE without the mean error)
    ref_s, mtp_s = (v.reshape(-1, 6) for v in paired_values(pred, labels)["stress"])  # GPa, Voigt
    vol = labels.volume[labels.has_stress]
    bias = -(ref_s - mtp_s)[:, :3].mean(axis=1)  # PBE − MTP pressure per label
    large = vol > args.large
    out = {"labels": len(images),
           "energy_rmse_centred_mev_per_atom": metrics["energy_rmse_centered_mev_per_atom"],
           "pressure_bias_GPa": float(bias.mean()),
           f"pressure_bias_GPa_V_above_{args.large:g}": float(bias[large].mean()) if large.any() else None,
           "labels_V_above": int(large.sum())}
    for name, cols in (("deviatoric_diagonal", slice(0, 3)), ("shear", slice(3, 6))):
        p, m = ref_s[:, cols], mtp_s[:, cols]
        if name == "deviatoric_diagonal":
            p, m = p - p.mean(axis=1, keepdims=True), m - m.mean(axis=1, keepdims=True)
        p, m = p.ravel(), m.ravel()
        out[f"{name}_slope"] = float(p @ m / (p @ p))
        out[f"{name}_rmse_GPa"] = float(np.sqrt(((p - m) ** 2).mean()))
    print(json.dumps(out, indent=1))


def cmd_relabel(args) -> None:
    from ase.units import GPa

    from mtpkit.active_learning.label_queue import spec_from_settings
    from mtpkit.active_learning.labellers import code_version, label_with_provenance
    from mtpkit.active_learning.store import LabelStore

    row = LabelStore(args.store).row(args.row)
    if row.status != "ok":
        raise SystemExit(f"row {args.row} of {args.store} has status {row.status!r}, not 'ok'")
    settings = row.data["settings"]
    spec = spec_from_settings(settings)
    ref = row.atoms
    work = ref.copy()
    work.calc = None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = label_with_provenance(spec, work)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if out.atoms is None:
        raise SystemExit(f"row {args.row}: the label failed again: {out.reason}")
    new = out.atoms
    print(json.dumps({
        "row": row.id, "source": row.keys["source"], "code_now": code_version(spec.kind),
        "code_stored": row.keys.get("code"), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "stored_wall_s": row.keys.get("wall_s"),
        "max_abs_dE_eV": abs(new.get_potential_energy() - ref.get_potential_energy()),
        "max_abs_dF_eV_per_A": float(np.abs(new.get_forces() - ref.get_forces()).max()),
        "max_abs_dS_GPa": float(np.abs(new.get_stress() - ref.get_stress()).max() / GPa),
    }, indent=1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("history", help="the campaign's iterations as a table")
    p.add_argument("--campaign", required=True, type=Path, help="the campaign folder (runs/pbe/campaign)")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("grades", help="which atoms extrapolate, iteration by iteration")
    p.add_argument("--campaign", required=True, type=Path, help="the campaign folder (runs/pbe/campaign)")
    p.add_argument("--store", type=Path, help="label store: also tabulate training sites per species")
    p.set_defaults(func=cmd_grades)
    p = sub.add_parser("npt", help="volume, pressure and γ of an NPT run of a potential")
    p.add_argument("--potential", required=True, help=".almtp with an active set")
    p.add_argument("--structure", required=True, help="a structure file ASE reads")
    p.add_argument("--supercell", help="9 integers, row-major: the box from the cell")
    p.add_argument("--temperature", type=float, default=500.0)
    p.add_argument("--ps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--ensemble", choices=["tri", "aniso", "iso", "nvt"], default="tri",
                   help="NPT with this barostat at 0 bar (the campaign's: tri), or NVT at the structure's cell")
    p.add_argument("--every", type=int, default=5, help="print every this many 0.2 ps blocks")
    p.add_argument("--dump", type=Path,
                   help="write each 0.2 ps block's last frame here (extxyz, with time_ps and max_gamma)")
    p.set_defaults(func=cmd_npt)
    p = sub.add_parser("refit", help="refit the store's training labels with other training settings")
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--init", help="the potential to start from (.mtp); none: fresh (--level, --radial-basis-size)")
    p.add_argument("--level", type=int, default=10)
    p.add_argument("--radial-basis-size", type=int, default=8)
    p.add_argument("--upto", type=int, help="only rows with id <= this (the labels a campaign fit saw)")
    p.add_argument("--max-iter", type=int, default=400)
    p.add_argument("--stress-weight", type=float, default=0.001)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_refit)
    p = sub.add_parser("errors", help="energy and stress errors of a potential on the training labels")
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--potential", required=True)
    p.add_argument("--upto", type=int)
    p.add_argument("--large", type=float, default=1110.0, help="volume (Å^3) above which a cell counts as expanded")
    p.add_argument("--subset", help="the finished rows of this subset of the store instead of the training labels")
    p.add_argument("--per-frame", action="store_true",
                   help="also a line per label: volume, energy, pressure, force errors")
    p.set_defaults(func=cmd_errors)
    p = sub.add_parser("request", help="request frames of an npt --dump as labels at the campaign's settings")
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--frames", required=True, type=Path, help="an npt --dump file")
    p.add_argument("--times", required=True, help="comma-separated block end times (ps) of the frames to label")
    p.add_argument("--subset", default="probe",
                   help="store subset (not 'heldout' or 'convergence': the campaign trains on it)")
    p.add_argument("--priority", type=int, default=100)
    p.set_defaults(func=cmd_request)
    p = sub.add_parser("probe", help="request frames drawn at random from an iteration's exploration runs")
    p.add_argument("--campaign", required=True, type=Path)
    p.add_argument("--iteration", required=True, type=int)
    p.add_argument("--n", type=int, default=4, help="frames to draw (over all runs, each frame equally likely)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", type=Path, help="request them here (subset --subset); none: only list them")
    p.add_argument("--subset", default="probe")
    p.add_argument("--priority", type=int, default=100)
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("relabel", help="recompute one stored label and compare")
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--row", required=True, type=int)
    p.set_defaults(func=cmd_relabel)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
