"""The campaign's numbers per structure, as one machine-readable record each (``results.json``).

One record per structure, from the analysis stage's ``summary.json`` and the structures
stage's ``structures.json`` (the same numbers the report shows):

``name``, ``tm_class`` ("layered" or "mixed"), ``octahedral_occupancy`` (fraction of the
octahedral Na sites occupied in the study structure), ``Ea_eV`` and ``Ea_err_eV`` (the
Arrhenius regime σ(293 K) is extrapolated from: the low-temperature one when two regimes are
selected, else the single one; eV), ``sigma_293K_S_cm`` and ``sigma_293K_err_S_cm`` (S/cm),
``runs`` (production runs analysed), ``runs_host_solid`` (of those, the runs whose host stayed
a solid), and for the record ``runs_total``, ``Ea_one_regime_eV`` / ``_err_eV``, the two-regime
fit when there is one (``Ea_below_eV``, ``Ea_above_eV`` and errors, ``breakpoint_K``), the
model the analysis selected, and ``D_by_T`` (K → D in cm²/s with its error).
"""

from __future__ import annotations

from typing import Any

__all__ = ["structure_results"]


def _regime(fit: dict | None, k: int) -> dict | None:
    return fit["regimes"][k] if fit and len(fit.get("regimes", [])) > k else None


def structure_results(summary: dict, structures: dict) -> list[dict[str, Any]]:
    """Records of every structure of ``summary`` (analysis ``summary.json``), described by
    ``structures`` (``structures.json``); values are ``None`` where the analysis has none."""
    out = []
    for name, e in summary["structures"].items():
        info = structures["structures"][name]
        t = e.get("transport") or {}
        arr = t.get("arrhenius") or {}
        one = _regime(arr.get("one_regime"), 0)
        two = arr.get("two_regimes") if arr.get("selected") == "two_regimes" else None
        used = _regime(two, 0) if two else one
        ext = t.get("extrapolated") or {}
        fw = e.get("framework") or {}
        tm = info.get("tm_label")
        rec = {
            "name": name,
            "tm_class": tm.split("-")[0] if tm else None,
            "octahedral_occupancy": info["oct_occupancy_percent"] / 100.0 if "oct_occupancy_percent" in info else None,
            "Ea_eV": used["Ea_eV"] if used else None,
            "Ea_err_eV": used["Ea_err_eV"] if used else None,
            "sigma_293K_S_cm": ext.get("sigma"),
            "sigma_293K_err_S_cm": ext.get("sigma_err"),
            "extrapolated_to_K": ext.get("T_K"),
            "runs": int(e.get("runs_done", 0)),
            "runs_host_solid": sum(bool(c.get("solid")) for c in fw.values()),
            "runs_total": int(e.get("runs_total", 0)),
            "arrhenius_selected": arr.get("selected"),
            "Ea_one_regime_eV": one["Ea_eV"] if one else None,
            "Ea_one_regime_err_eV": one["Ea_err_eV"] if one else None,
            "D_by_T": {f"{d['temperature_K']:g}": {"D_cm2_s": d["D"], "D_err_cm2_s": d["D_err"]}
                       for d in t.get("temperatures", [])},
        }
        fit2 = arr.get("two_regimes")
        if fit2:
            lo, hi = _regime(fit2, 0), _regime(fit2, 1)
            rec.update(breakpoint_K=fit2.get("breakpoint_K"), Ea_below_eV=lo["Ea_eV"], Ea_below_err_eV=lo["Ea_err_eV"],
                       Ea_above_eV=hi["Ea_eV"], Ea_above_err_eV=hi["Ea_err_eV"])
        out.append(rec)
    return out
