"""Summarise a finished (or partly finished) NYZC75 campaign folder side by side with the
reference study, and print the fidelity ratios.

    python benchmarks/nyzc75_report.py CAMPAIGN_FOLDER

Prints, from the campaign's own files: wall time per stage, the AL history (labels,
max γ, train errors), per structure Ea (meV) and σ(293 K) next to the reference
study's range for its TM class, and the MTP/labeller D ratio and speed-up per MD step.
Run the campaign first: ``mtpkit run examples/nyzc75.toml --scale tiny --output DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mtpkit.active_learning.engine import learning_history
from mtpkit.campaign.report import REFERENCE, REFERENCE_CITATION, _pm, _regimes


def main(folder: str) -> int:
    out = Path(folder)

    def load(*parts):
        p = out.joinpath(*parts)
        return json.loads(p.read_text()) if p.is_file() else None

    state = load("state.json")
    if state is None:
        print(f"{out}: not a campaign folder (no state.json)")
        return 2
    cfg = load("campaign.json")
    print(f"campaign {out} (scale {cfg['scale']}, labeller {cfg['labeller']['kind']})")
    for stage, e in state["stages"].items():
        print(f"  {stage:16s} {e.get('status', ''):8s} {e.get('wall_s', float('nan')):9.1f} s")
    hist = learning_history(out / "03_active_learning")
    print("AL: iter  T(K)  max_gamma  labelled  train_set  E_rmse(meV/atom)  F_rmse(eV/A)")
    for it in hist["iterations"]:
        tr = (it.get("errors") or {}).get("train") or {}
        print(f"    {it['iteration']:4d} {it.get('temperature_K') or 0:5.0f} {it.get('max_gamma') or 0:10.3g} "
              f"{it.get('n_labelled', 0):9d} {it.get('n_train', 0):10d} "
              f"{tr.get('energy_rmse_mev_per_atom', float('nan')):17.2f} {tr.get('force_rmse', float('nan')):13.3f}")
    print(f"AL stop: {hist.get('stop_reason')}")
    summ = load("05_analysis", "summary.json")
    structs = (load("01_structures", "structures.json") or {}).get("structures", {})
    if summ:
        def f(r):
            return _pm(1000 * r["Ea_eV"], 1000 * r["Ea_err_eV"], "{:.0f}") if r else "-"

        print(f"structure            Ea_below(meV)   Ea_above(meV)   Ea_one(meV)   sigma293(S/cm)      "
              f"| study ({REFERENCE_CITATION}): Ea, sigma293")
        for name, e in summ["structures"].items():
            t = e.get("transport") or {}
            below, above, single = _regimes(t.get("arrhenius"))
            ext = t.get("extrapolated") or {}
            ref = REFERENCE.get(structs.get(name, {}).get("tm_label"), {})
            print(f"{name:20s} {f(below):15s} {f(above):15s} {f(single):13s} "
                  f"{_pm(ext.get('sigma'), ext.get('sigma_err')):19s} | {ref.get('Ea', '-')}, "
                  f"{ref.get('sigma293', '-')}")
    fid = load("06_fidelity", "fidelity.json")
    if fid:
        print(f"fidelity at {fid['temperature_K']:g} K on {fid['structure']}: "
              f"D(MTP)/D(labeller) short-run = {fid.get('D_ratio_short')}, analysis module = "
              f"{fid.get('D_ratio_analysis_module')}; speed-up per step (same-length runs) = "
              f"{fid.get('speedup_per_step_same_length')}, vs production = "
              f"{fid.get('speedup_per_step_production')}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
