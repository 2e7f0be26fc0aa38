"""How well does a 37-atom cell cut from a 296-atom box reproduce the box around its centre atom?

For every box frame that the tile campaign's production-size rung saved (``iter_*/explored.extxyz``
of the rung's iterations), this cuts the tile-shaped window around the frame's atom of highest
neighbourhood grade (under the potential that explored it), as ``mtpkit.active_learning.cut`` does,
and labels the cut cell and the box with the campaign's labeller (CHGNet). It prints:

* how many frames give a window with the tile's composition, and how many of those also pass the
  engine's seam check (no pair closer than 0.9 of the box's closest pair);
* for the windows with the right composition, the closest pair across the seams against the box's;
* the labeller's force on the centre atom and on its neighbours within ``--shell`` Å, in the cut
  cell against the same atoms in the box (RMS difference, eV/Å), next to the RMS force itself.

A cut that teaches the box's environment has centre forces close to the box's. Usage:
``python benchmarks/tile_cut/cut_quality.py runs/tile_cut/tile [--shell 3.2]``; writes
``cut_quality.json`` in the campaign folder. Units: Å, eV/Å.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("campaign", type=Path)
    ap.add_argument("--shell", type=float, default=3.2, help="neighbours of the centre compared (Å)")
    args = ap.parse_args()

    from ase.io import read

    from mtpkit.active_learning.cut import closest_pair, composition_of, supercell_matrix, windows
    from mtpkit.active_learning.fit import load_fitted
    from mtpkit.active_learning.grades import grade_images
    from mtpkit.active_learning.labellers import LabellerSpec, make_calculator

    camp = json.loads((args.campaign / "campaign.json").read_text())
    species = list(camp["campaign"]["species"])
    al = args.campaign / "03_active_learning"
    relax = args.campaign / "01_relax"
    name = next(p.stem for p in relax.glob("*.extxyz") if not p.stem.endswith(("_md", "_path")))
    tile, md = read(relax / f"{name}.extxyz"), read(relax / f"{name}_md.extxyz")
    matrix, composition = supercell_matrix(md.cell, tile.cell), composition_of(tile)
    lab = camp["labeller"]
    calc = make_calculator(LabellerSpec(lab["kind"], dict(lab.get("parameters", {})), lab.get("calculator", ""),
                                        bool(lab.get("stress", True))))

    rows = []
    for it in sorted(al.glob("iter_*")):
        report = json.loads((it / "report.json").read_text()) if (it / "report.json").is_file() else {}
        if not report.get("md_size") or not (it / "explored.extxyz").is_file():
            continue
        frames = list(read(it / "explored.extxyz", index=":"))
        if not frames:
            continue
        k = int(it.name.split("_")[1])
        prev = next(al / f"iter_{j:03d}" for j in range(k - 1, -1, -1) if (al / f"iter_{j:03d}" / "fit.json").is_file())
        mtp, aset = load_fitted(prev, species)
        grades = grade_images(mtp, aset, frames, species).per_atom
        for box, g in zip(frames, grades, strict=True):
            centre = int(g.argmax())
            box_cp = closest_pair(box)
            found = list(windows(box, centre, matrix, composition))
            row = {"iteration": k, "centre": centre, "element": box.get_chemical_symbols()[centre],
                   "grade": float(g[centre]), "box_closest_pair": box_cp, "windows": len(found)}
            if found:
                seams = [closest_pair(c) for _, c, _ in found]
                best = int(np.argmax(seams))
                _, cell, idx = found[best]
                row.update(best_closest_pair=seams[best], passes=seams[best] >= 0.9 * box_cp)
                b = box.copy()
                b.calc = calc
                fb = b.get_forces()
                cell.calc = calc
                fc = cell.get_forces()
                ci = int(np.nonzero(idx == centre)[0][0])
                d = cell.get_distances(ci, range(len(cell)), mic=True)
                shell = np.nonzero(d <= args.shell)[0]
                diff = fc[shell] - fb[idx[shell]]
                row.update(shell_atoms=len(shell), centre_dF=float(np.linalg.norm(fc[ci] - fb[centre])),
                           shell_dF_rms=float(np.sqrt((diff ** 2).sum(axis=1).mean())),
                           shell_F_rms=float(np.sqrt((fb[idx[shell]] ** 2).sum(axis=1).mean())))
            rows.append(row)
            print(json.dumps(row), flush=True)

    comp = [r for r in rows if r["windows"]]
    ok = [r for r in comp if r["passes"]]
    print(f"\n{len(rows)} box frames; {len(comp)} with a window of the tile's composition; "
          f"{len(ok)} also pass the seam check (closest pair >= 0.9 x the box's)")
    if comp:
        ratio = np.array([r["best_closest_pair"] / r["box_closest_pair"] for r in comp])
        print(f"closest pair across the seams / box closest pair: median {np.median(ratio):.2f}, "
              f"min {ratio.min():.2f}, max {ratio.max():.2f}")
        for label, sel in (("passing", ok), ("all with the composition", comp)):
            if sel:
                dF = np.array([r["shell_dF_rms"] for r in sel])
                F = np.array([r["shell_F_rms"] for r in sel])
                c = np.array([r["centre_dF"] for r in sel])
                print(f"{label} ({len(sel)}): centre |ΔF| median {np.median(c):.3f} eV/Å; shell (≤ {args.shell:g} Å) "
                      f"ΔF RMS median {np.median(dF):.3f}, max {dF.max():.3f} eV/Å; box shell F RMS median "
                      f"{np.median(F):.3f} eV/Å")
    (args.campaign / "cut_quality.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
