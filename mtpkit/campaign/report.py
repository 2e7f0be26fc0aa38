"""Stage 7: the campaign report, ``report.md`` and ``report.html`` in the campaign folder.

Every number comes from the files the stages wrote; the only numbers typed in here
are the reference study's published values (:data:`REFERENCE`), printed as such.
The report is built as a list of blocks (heading, paragraph, table, image) rendered
to both Markdown and HTML (:func:`to_markdown`, :func:`to_html`), one function per
section (:data:`SECTIONS`) turning the gathered data into blocks; images are linked by
their path relative to the campaign folder.
"""

from __future__ import annotations

import html
import math
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from mtpkit.io_utils import atomic_write_text

#: Sebti et al., J. Mater. Chem. A 10, 21565 (2022), Fig. 8b (PBE DFT-trained MTP).
REFERENCE = {
    "layered-TM": {"Ea": "537–615 meV", "sigma293": "2.2–6.1 × 10⁻⁵ S/cm"},
    "mixed-TM": {"Ea": "≈ 410 meV", "sigma293": "> 6 × 10⁻⁴ S/cm"},
}
REFERENCE_CITATION = "Sebti et al., J. Mater. Chem. A 10, 21565 (2022)"

Block = tuple


def _pm(v: Any, e: Any, fmt: str = "{:.3g}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if e is None or (isinstance(e, float) and not math.isfinite(e)):
        return fmt.format(v)
    return f"{fmt.format(v)} ± {fmt.format(e)}"


def _solid_runs(entry: dict) -> str:
    """``k/n`` production runs of a structure whose host framework stayed solid."""
    fw = entry.get("framework") or {}
    return f"{sum(c['solid'] for c in fw.values())}/{len(fw)}" if fw else "—"


def _num(v: Any, fmt: str = "{:.3g}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return fmt.format(v)


# --------------------------------------------------------------------------- rendering


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2] + "\n")
        elif kind == "p":
            out.append(b[1] + "\n")
        elif kind == "note":
            out.append("> **Note.** " + b[1] + "\n")
        elif kind == "table":
            headers, rows = b[1], b[2]
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            for r in rows:
                out.append("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |")
            out.append("")
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})\n")
    return "\n".join(out) + "\n"


def to_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
           "table{border-collapse:collapse;margin:0.5em 0 1.2em}td,th{border:1px solid #bbb;"
           "padding:3px 8px;font-size:0.9em}th{background:#eee}img{max-width:720px;display:block;"
           "margin:0.5em 0}.note{background:#fff6d6;border-left:4px solid #e0b000;padding:0.5em 1em}"
           "</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif kind == "note":
            out.append(f"<p class='note'><b>Note.</b> {e(b[1])}</p>")
        elif kind == "table":
            out.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b[1]) + "</tr>")
            for r in b[2]:
                out.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
            out.append("</table>")
        elif kind == "img":
            out.append(f"<figure><img src='{e(b[1])}' alt='{e(b[2])}'><figcaption>{e(b[2])}"
                       "</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- content


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5, check=False).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001  # best effort: a report never fails for want of git metadata
        return "unknown"


def _regimes(arr: dict | None) -> tuple[dict | None, dict | None, dict | None]:
    """(below, above, single) regime dicts of an analysis 'arrhenius' entry."""
    if not arr or not arr.get("selected"):
        return None, None, None
    if arr["selected"] == "two_regimes" and arr.get("two_regimes"):
        r = arr["two_regimes"]["regimes"]
        return r[0], r[1], None
    return None, None, arr["one_regime"]["regimes"][0]


def _is_pbe(labeller: dict) -> bool:
    """Whether the campaign's labels are PBE DFT (GPAW with xc = PBE, GPAW's default)."""
    return labeller.get("kind") == "gpaw" and str((labeller.get("parameters") or {}).get("xc", "PBE")).upper() == "PBE"


def _gpaw_settings(labeller: dict) -> str:
    p = labeller.get("parameters") or {}
    keys = ("mode", "mode_ecut", "kpts", "smearing_eV")
    return ", ".join(f"{k} {p[k]}" for k in keys if k in p) or "GPAW defaults"


def _header(data: dict) -> list[Block]:
    """Title, provenance, the labeller caveat and the stage timings."""
    cfg, scale = data["config"], data["config"]["scale"]
    return [
        ("h", 1, cfg["report"]["title"]),
        ("p", f"Scale `{scale}`, configuration {cfg.get('source') or '(built-in)'}; mtpkit commit "
              f"{data['commit']}; machine {data['machine']}; written {data['written']}."),
        ("note", (f"Labels come from PBE DFT (GPAW, {_gpaw_settings(cfg['labeller'])}), the functional of the "
                  f"reference study ({REFERENCE_CITATION}, VASP PBE); the MTP reproduces these labels."
                  if _is_pbe(cfg["labeller"]) else
                  f"Labels come from the `{cfg['labeller']['kind']}` labeller, not from the PBE DFT "
                  f"of the reference study ({REFERENCE_CITATION}); the MTP reproduces its labeller, so "
                  "differences from the study's numbers include the labeller's own error.")
                 + ("" if scale == "paper" else
                    f" At scale `{scale}` the runs are far shorter and smaller than the study's: these "
                    "numbers are not converged and show only that every step of the campaign works.")),
        ("table", ["stage", "status", "wall time (s)"],
         [[k, v.get("status", ""), _num(v.get("wall_s"), "{:.1f}")]
          for k, v in data["stages"].items() if k != "report"]),
    ]


def _structures(data: dict) -> list[Block]:
    """1. The orderings enumerated and the structures used, and their relaxation."""
    st = data["structures"]
    box = "296-atom 2×2×2 MD box" if st["size"] == "box" else "37-atom ordering cell"
    tiled = (" for production MD; relaxation, starting set and active learning used the "
             "37-atom ordering cell, and the MD box is that relaxed cell tiled"
             if st.get("learn_size", st["size"]) != st["size"] else "")
    if "n_orderings" in st:
        origin = (f"{st['n_orderings']} symmetry-distinct NYZC75 orderings enumerated ("
                  + ", ".join(f"{k}: {v}" for k, v in sorted(st["orderings_by_class"].items()))
                  + f"); {len(st['structures'])} used, as the {box}{tiled}.")
    else:  # structures.files, each a state of a study structure (structures.reference)
        origin = (f"{len(st['structures'])} structures read from files, each a state of the study structure "
                  "named beside it (structures.reference): "
                  + "; ".join(f"{n} ({s['source']}, {s['reference']}, {s['n_atoms']} atoms"
                              + (f", production MD in the {s['md_n_atoms']}-atom box tiled from it"
                                 if s.get("md_n_atoms") else "") + ")"
                              for n, s in st["structures"].items()) + ".")
    return [
        ("h", 2, "1. Structures"),
        ("p", origin),
        ("table", ["structure", "atoms", "TM ordering", "oct. Na (%)", "Ewald (eV/37 atoms)", "cell", "ordering"],
         [[n, s["n_atoms"], s["tm_label"], s["oct_occupancy_percent"], _num(s["ewald_eV_per_37_atoms"], "{:.3f}"),
           s["cell"], s["ordering"]] for n, s in st["structures"].items()]),
        *_relaxation(data.get("relax") or {}),
        *_energy_ranking(st, data.get("energies") or {}),
    ]


def _energy_ranking(st: dict, energies: dict) -> list[Block]:
    """The structures of one composition ranked by the labeller's energy as learning starts, per TM
    class, and which octahedral occupancy is lowest in each (the study: low occupancy)."""
    rows, lowest = [], []
    for formula in sorted({e["formula"] for e in energies.values()}):
        same = {n: e for n, e in energies.items() if e["formula"] == formula and n in st["structures"]}
        if len(same) < 2:
            continue
        e_min = min(e["energy_per_atom_eV"] for e in same.values())
        for tm in sorted({st["structures"][n]["tm_label"] for n in same}):
            cls = {n: e for n, e in same.items() if st["structures"][n]["tm_label"] == tm}
            best = min(cls, key=lambda n: cls[n]["energy_per_atom_eV"])
            c_min = cls[best]["energy_per_atom_eV"]
            lowest.append(f"{tm}: {st['structures'][best]['oct_occupancy_percent']} % ({best})")
            for n in sorted(cls, key=lambda n: cls[n]["energy_per_atom_eV"]):
                rows.append([n, tm, st["structures"][n]["oct_occupancy_percent"],
                             f"{1000 * (cls[n]['energy_per_atom_eV'] - c_min):.2f}",
                             f"{1000 * (cls[n]['energy_per_atom_eV'] - e_min):.2f}", cls[n]["source"]])
    if not rows:
        return []
    return [("p", "Energies of the structures learning starts from (the labeller's, per atom; same composition): "
                  "the lowest octahedral Na occupancy of each TM class is " + "; ".join(lowest)
                  + ". The reference study finds low octahedral occupancy favoured."),
            ("table", ["structure", "TM ordering", "oct. Na (%)", "E − E_min of its class (meV/atom)",
                       "E − E_min of all (meV/atom)", "energy from"], rows)]


def _relaxation(rx: dict) -> list[Block]:
    """Energy, volume, stress and bond lengths before → after the labeller's relaxation."""
    if not rx.get("structures"):
        return []
    rows = []
    given = [n for n, r in rx["structures"].items() if r.get("as_given")]
    for n, r in rx["structures"].items():
        if r.get("as_given"):
            continue
        bb, aa = r["before"], r["after"]
        bonds = "; ".join(f"{k} {bb['bonds_A'][k]:.3f} → {aa['bonds_A'].get(k, float('nan')):.3f}"
                          for k in bb["bonds_A"])
        rows.append([n, r["steps"], "yes" if r["converged"] else "no",
                     f"{bb['energy_eV']:.3f} → {aa['energy_eV']:.3f}",
                     f"{bb['volume_A3']:.1f} → {aa['volume_A3']:.1f}",
                     f"{max(abs(x) for x in bb['stress_GPa']):.2f} → {max(abs(x) for x in aa['stress_GPa']):.2f}",
                     _num(aa["max_force_eV_A"], "{:.3f}"), bonds])
    note = [("p", f"Used as given, without relaxation (relax.steps = 0): {', '.join(given)}.")] if given else []
    if not rows:
        return note
    return [*note, ("p", "Each structure was relaxed with the labeller (FIRE, cell + positions) before the "
                  "starting set was built; the active-learning, production and fidelity MD start "
                  "from the relaxed structure."),
            ("table", ["structure", "FIRE steps", "converged", "E (eV)", "V (Å³)", "max |stress| (GPa)",
                       "max |F| after (eV/Å)", "mean cation–Cl distance (Å)"], rows)]


def _starting_set(data: dict) -> list[Block]:
    """2. What the starting set is made of."""
    ss = data["starting_set"]
    parts = [f"{ss['n_copies'] if ss.get('n_copies') is not None else ss['n_labelled']} of "
             f"{ss['per_structure']} strained/rattled copies of each relaxed structure (rattle σ up to "
             f"{ss['rattle']} Å, strain ±{ss['strain']})"] if ss.get("per_structure") else []
    if ss.get("n_relax_path"):
        parts.append(f"{ss['n_relax_path']} frames along the relaxations")
    if ss.get("n_md"):
        parts.append(f"{ss['n_md']} snapshots of labeller Langevin MD at "
                     f"{', '.join(f'{t:g}' for t in ss['md_temperatures'])} K ({ss['md_steps']} steps of "
                     f"{ss['md_timestep']:g} fs, every {ss['md_every']}th step kept)")
    given = ss.get("given")
    if given:
        parts.append(f"{ss['n_initial']} given in `{Path(given['file']).name}`, labelled by "
                     + ", ".join(f"{who} ({n})" for who, n in sorted(given["labelled_by"].items())))
    return [("h", 2, "2. Starting set"),
            ("p", f"{ss['n_labelled']} labelled configurations ({ss['n_quarantined']} quarantined)"
                  + (": " + "; ".join(parts) if parts else "") + ".")]


def _iteration_row(it: dict) -> list:
    err = it.get("errors") or {}
    tr, va = err.get("train") or {}, err.get("validation") or {}
    pe = (it.get("probes") or {}).get("errors") or {}  # the exploring potential on this iteration's probes
    runs = it.get("runs") or []
    where = " (MD box)" if it.get("md_size") else ""
    return [it["iteration"], _num(it.get("temperature_K"), "{:g}") + where,
            "; ".join(f"{r['status']} {r['time_ps']:.2f} ps" for r in runs) or "initial fit",
            _num(it.get("max_gamma"), "{:.3g}"), {True: "yes", False: "no"}.get(it.get("converged"), "—"),
            it.get("n_candidates", 0), it.get("n_selected", 0), it.get("n_labelled", 0), it.get("n_train", ""),
            _num(tr.get("energy_rmse_mev_per_atom"), "{:.2f}"), _num(tr.get("force_rmse"), "{:.3f}"),
            _num(va.get("energy_rmse_mev_per_atom"), "{:.2f}"), _num(va.get("force_rmse"), "{:.3f}"),
            _num(pe.get("energy_rmse_mev_per_atom"), "{:.2f}"), _num(pe.get("force_rmse"), "{:.3f}")]


def _probe_rule(ac: dict) -> str:
    """The probes' part of the reliability rule, in words ("" without probes)."""
    n = ac.get("probes_per_iteration") or 0
    if not n:
        return ""
    bounds = [f"{name} RMSE ≤ {v:g} {unit}" for name, v, unit in
              (("energy", ac.get("probe_energy_rmse") or 0, "meV/atom"), ("force", ac.get("probe_force_rmse") or 0,
                                                                          "eV/Å")) if v]
    rule = f", and {' and '.join(bounds)}" if bounds else ""
    return (f"{rule} on {n} probe(s) an iteration (frames drawn at random from the runs whatever their grade, "
            f"labelled and trained on; the last two columns are the exploring potential's errors on them)")


def _first_potential(pot: dict) -> str:
    """Where iteration 0's potential came from, when it was given (``potential.initial``)."""
    if not pot.get("initial"):
        return ""
    how = ("taken as it is (refit_initial = false); refits warm-start from it" if pot.get("refit_initial") is False
           else "refitted on the starting set first")
    return f" The first potential is the given `{Path(pot['initial']).name}` ({pot['initial']}), {how}."


def _active_learning(data: dict) -> list[Block]:
    """3. Stop reason, thresholds, one row per iteration, first and last parity plots."""
    al, ac = data["learning"], data["al_cfg"]
    b: list[Block] = [
        ("h", 2, "3. Active learning"),
        ("p", f"Stop: {al.get('stop_reason') or 'not finished'}. γ_select = {ac['gamma_select']}, "
              f"γ_break = {ac['gamma_break']}, reliable when every run finishes "
              f"{ac['steps'] * ac['timestep'] / 1000:g} ps with max γ < {ac['gamma_stop']}"
              + _probe_rule(ac) + "." + _first_potential((data.get("config") or {}).get("potential") or {})),
        ("table", ["iter", "T (K)", "exploration runs", "max γ", "reliable", "candidates", "selected",
                   "labelled", "training set", "E RMSE train (meV/atom)", "F RMSE train (eV/Å)",
                   "E RMSE valid (meV/atom)", "F RMSE valid (eV/Å)", "E RMSE probes (meV/atom)",
                   "F RMSE probes (eV/Å)"],
         [_iteration_row(it) for it in al["iterations"]]),
    ]
    fits = [it for it in al["iterations"] if it.get("parity_plot")]
    for it in ([fits[0], fits[-1]] if len(fits) > 1 else fits):
        b.append(("img", f"03_active_learning/{it['parity_plot']}",
                  f"Parity plot after iteration {it['iteration']} (training set of {it['n_train']})"))
    return b


def _production(data: dict) -> list[Block]:
    """4. Production MD settings, finished runs and the extrapolation grades watched."""
    pc = data["production_cfg"]
    b: list[Block] = [
        ("h", 2, "4. Production MD"),
        ("p", f"NPT ({pc['barostat']}), {pc['steps']} steps of {pc['timestep']:g} fs "
              f"({pc['steps'] * pc['timestep'] / 1000:g} ps) per run, {pc['replicas']} replica(s) at "
              + ", ".join(f"{t:g}" for t in pc["temperatures"]) + " K."),
        ("table", ["structure", "runs finished"],
         [[n, f"{e['runs_done']}/{e['runs_total']}"] for n, e in data["transport"]["structures"].items()]),
    ]
    grades = data.get("production_gamma") or {}
    if grades:
        first = next(iter(grades.values()))
        gb = first["gamma_break"]
        b.append(("p", f"Extrapolation grade watched (not acted on) every {first['every']} "
                       f"steps: a max γ above γ_break = {gb:g} means the run left the region the potential "
                       "was trained on, and its numbers are less trustworthy."))
        b.append(("table", ["run", "max γ", f"graded frames with γ > {gb:g}"],
                  [[k, _num(v["max_gamma"], "{:.3g}"), v["n_above_break"]] for k, v in grades.items()]))
    return b


def _transport(data: dict) -> list[Block]:
    """5. Per structure: D, σ, Haven ratio per temperature, host framework, plots, notes."""
    b: list[Block] = [("h", 2, "5. Na transport")]
    for name, e in data["transport"]["structures"].items():
        b.append(("h", 3, name))
        t = e.get("transport")
        b.extend(("p", note) for note in e.get("notes", []))
        if not t:
            continue
        b.append(("table", ["T (K)", "D (cm²/s)", "σ (S/cm)", "Haven ratio", "fit window (ps)", "replicas"],
                  [[_num(x["temperature_K"], "{:g}"), _pm(x["D"], x["D_err"]), _pm(x["sigma"], x["sigma_err"]),
                    _pm(x.get("haven_ratio"), x.get("haven_ratio_err")),
                    "–".join(f"{w:.2f}" for w in x["fit_window_ps"]), len(x.get("D_replicas", []))]
                   for x in t["temperatures"]]))
        b.extend(_framework_table(e.get("framework") or {}))
        for p in t.get("plots", []):
            if p.endswith(".png"):
                kind = "Arrhenius plot" if "arrhenius" in Path(p).name else "MSD"
                b.append(("img", f"05_analysis/{p}", f"{kind}, {name}"))
        b.extend(("p", note) for note in t.get("notes", []))
    return b


def _framework_table(fw: dict) -> list[Block]:
    """Per temperature: how many runs kept a solid host, their states, the largest host MSD."""
    if not fw:
        return []
    rows = []
    for temp in sorted({c["temperature_K"] for c in fw.values()}):
        cs = [c for c in fw.values() if c["temperature_K"] == temp]
        worst = max(cs, key=lambda c: c["msd_A2"][c["worst_host"]])
        kept = [c["same_centre"] for c in cs if c.get("same_centre") is not None]
        rows.append([_num(temp, "{:g}"), f"{sum(c['solid'] for c in cs)}/{len(cs)}",
                     ", ".join(c["state"] for c in cs),
                     f"{worst['worst_host']} {worst['msd_A2'][worst['worst_host']]:.2f}",
                     f"{100 * min(kept):.1f}" if kept else "—",
                     _num(max(c["lag_ps"] for c in cs), "{:.3g}"),
                     ", ".join(f"{100 * c['volume_change']:+.1f}" for c in cs)])
    return [("table", ["T (K)", "runs with a solid host", "host state per run", "largest host MSD (Å²)",
                       "Cl keeping their metal (%, lowest run)", "at lag (ps)", "volume change per run (%)"], rows)]


def _ea(regime: dict | None) -> str:
    return _pm(1000 * regime["Ea_eV"], 1000 * regime["Ea_err_eV"], "{:.0f}") if regime else "—"


def _activation_energies(data: dict) -> list[Block]:
    """6. Ea per regime and σ(293 K) next to the reference study's (its Fig. 8b)."""
    tr, st = data["transport"], data["structures"]
    bp = tr.get("breakpoint_K")
    rows = []
    for name, e in tr["structures"].items():
        t = e.get("transport") or {}
        below, above, single = _regimes(t.get("arrhenius"))
        ext = t.get("extrapolated") or {}
        ref = REFERENCE.get(st["structures"][name]["tm_label"], {})
        rows.append([name, _ea(below), _ea(above), _ea(single), _pm(ext.get("sigma"), ext.get("sigma_err")),
                     _solid_runs(e), ref.get("Ea", "—"), ref.get("sigma293", "—")])
    b: list[Block] = [
        ("h", 2, "6. Activation energies and σ(293 K) (cf. Fig. 8b of the reference study)"),
        ("table", ["structure", f"Ea below {bp:g} K (meV)" if bp else "Ea below (meV)",
                   f"Ea above {bp:g} K (meV)" if bp else "Ea above (meV)", "Ea one regime (meV)",
                   "σ(293 K) (S/cm)", "runs with a solid host", "study: Ea (same TM class)",
                   "study: σ(293 K) (same TM class)"], rows),
        ("p", f"mtpkit columns: this run ({data['config']['labeller']['kind']} labeller). Study columns: "
              f"{REFERENCE_CITATION}, Fig. 8b, range over the four octahedral occupancies of the "
              "structure's TM class (PBE DFT labels). σ(293 K) is extrapolated from the "
              "lowest-temperature Arrhenius regime fitted here."),
    ]
    fw_all = [c for e in tr["structures"].values() for c in (e.get("framework") or {}).values()]
    n_liquid = sum(not c["solid"] for c in fw_all)
    if n_liquid:
        b.append(("p", f"**Warning: in {n_liquid} of {len(fw_all)} production runs the host framework "
                       "is not solid** (Y/Zr leave their sites or the MCl6 octahedra exchange Cl, see section 5): "
                       "there the potential — trained on this labeller — has melted the crystal, and the Ea and "
                       "σ above include Na transport in that state, not only in the crystal the study modelled. "
                       "Those runs must not be compared with the study's values as solid-electrolyte numbers."))
    return b


def _sro(data: dict) -> list[Block]:
    """7. Warren–Cowley SRO of Y/Zr in the starting structure and averaged over the hottest run."""
    pairs = ("Y-Y", "Y-Zr", "Zr-Zr")
    rows = []
    for name, e in data["transport"]["structures"].items():
        ini, md = e.get("sro_initial") or {}, (e.get("sro_md") or {})
        mean = md.get("mean", {})
        rows.append([name, data["structures"]["structures"][name]["tm_label"]]
                    + [_num(ini.get(p), "{:+.3f}") for p in pairs] + [_num(mean.get(p), "{:+.3f}") for p in pairs]
                    + [md.get("run", "—")])
    return [("h", 2, "7. Short-range order (Warren–Cowley, Y/Zr, 8.5 Å)"),
            ("table", ["structure", "class", "SRO Y–Y start", "SRO Y–Zr start", "SRO Zr–Zr start",
                       "SRO Y–Y MD", "SRO Y–Zr MD", "SRO Zr–Zr MD", "MD run averaged"], rows)]


def _o_oct(data: dict) -> list[Block]:
    """8. Octahedral Na occupancy: start, equilibrated MD mean per run, plot per structure."""
    structures = data["transport"]["structures"]
    rows = [[name, label, _num(e.get("o_oct_initial"), "{:.3f}"), _pm(s["mean"], s["sem"], "{:.3f}"),
             _num(s["equilibrated_from_ps"], "{:.2f}")]
            for name, e in structures.items() for label, s in (e.get("o_oct") or {}).items()]
    return [("h", 2, "8. Octahedral Na occupancy O_oct(t) (cf. Fig. S23 of the reference study)"),
            ("table", ["structure", "run", "O_oct start", "O_oct MD mean ± block SEM", "mean from (ps)"], rows),
            *[("img", f"05_analysis/{e['o_oct_plot']}", f"O_oct(t), {name}")
              for name, e in structures.items() if e.get("o_oct_plot")]]


def _fidelity_run_row(label: str, r: dict) -> list:
    sh, am = r.get("short") or {}, r.get("analysis_module") or {}
    return [label, r["status"], f"{r['steps_done']}", _num(r["s_per_step"], "{:.3g}"),
            _pm(sh.get("D"), sh.get("D_fit_err")), "–".join(f"{w:.2f}" for w in sh.get("fit_window_ps", [])),
            _pm(am.get("D"), am.get("D_err")) if am.get("D") is not None else
            ("not computed: " + am.get("reason", "")) if am else "—"]


def _fidelity(data: dict) -> list[Block]:
    """9. MTP vs its labeller: D from the same short run, and the speed-up per MD step."""
    fd = data.get("fidelity")
    if not fd:
        return [("h", 2, "9. Fidelity: MTP vs its labeller, and speed"),
                ("p", "Fidelity check disabled in the configuration.")]
    prod = fd.get("production_s_per_step")
    b: list[Block] = [
        ("h", 2, "9. Fidelity: MTP vs its labeller, and speed"),
        ("p", f"{fd['structure']} at {fd['temperature_K']:g} K, NPT, {fd['steps']} steps of "
              f"{fd['timestep_fs']:g} fs, same seed, MTP (pair_style mtp) vs the "
              f"`{fd['labeller']}` labeller (fix external)."),
        ("table", ["engine", "status", "steps", "wall s/step (incl. set-up)", "D short-run MSD slope (cm²/s)",
                   "fit window (ps)", "D analysis module (cm²/s)"],
         [_fidelity_run_row(label, r) for label, r in fd["runs"].items()]),
        ("table", ["quantity", "value"], [
            ["D(MTP) / D(labeller), short-run MSD slope", _num(fd.get("D_ratio_short"))],
            ["D(MTP) / D(labeller), analysis module", _num(fd.get("D_ratio_analysis_module"))],
            ["speed-up per MD step, same-length runs", _num(fd.get("speedup_per_step_same_length"), "{:.0f}")],
            [f"speed-up per MD step vs production run {prod['run'] if prod else ''} "
             f"({prod['steps'] if prod else 0} steps)", _num(fd.get("speedup_per_step_production"), "{:.0f}")],
        ]),
    ]
    if fd.get("plot"):
        b.append(("img", f"06_fidelity/{fd['plot']}", "Na MSD, MTP vs labeller"))
    b.append(("p", "The short-run estimate fits one short trajectory per engine, so it carries large "
                   "statistical error; the labeller run is kept short because the labeller costs "
                   "orders of magnitude more per step."))
    return b


#: The report's sections, in order; each turns the gathered data into blocks.
SECTIONS = (_header, _structures, _starting_set, _active_learning, _production, _transport,
            _activation_energies, _sro, _o_oct, _fidelity)


def build_blocks(data: dict) -> list[Block]:
    """The report as blocks, from the dict :func:`write_report` gathers: one function per section."""
    return [block for section in SECTIONS for block in section(data)]


def write_report(folder: Path, data: dict) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder``; returns their paths."""
    data = dict(data)
    data.setdefault("commit", _git_commit())
    data.setdefault("machine", f"{platform.node()} ({platform.machine()}, {platform.system()}, "
                               f"Python {platform.python_version()})")
    data.setdefault("written", time.strftime("%Y-%m-%d %H:%M:%S"))
    blocks = build_blocks(data)
    md, htm = folder / "report.md", folder / "report.html"
    atomic_write_text(md, to_markdown(blocks))
    atomic_write_text(htm, to_html(blocks, data["config"]["report"]["title"]))
    return {"markdown": md, "html": htm}
