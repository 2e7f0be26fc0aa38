"""Stage 1: enumerate NYZC75 orderings and write the chosen representative structures.

Writes into the stage folder: ``<name>.extxyz`` (the structure used by every later
stage: the 296-atom MD box or its 37-atom ordering cell), ``<name>.cif``, and
``structures.json`` with the enumeration counts and, per structure, its ordering,
Ewald energy (eV per 37-atom cell), Warren–Cowley SRO (Y/Zr, 8.5 Å), octahedral
Na occupancy and the octahedral/prismatic Na reference sites (fractional
coordinates of the undecorated frame) used for O_oct(t).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtpkit.config import PipelineConfig
from mtpkit.io_utils import atomic_open, atomic_write_json, atomic_write_text

SRO_SPECIES = ("Y", "Zr")
SRO_CUTOFF = 8.5  # Å, as the reference study


def _na_reference_sites(frame) -> tuple[list[list[float]], list[bool]]:
    sub = frame.site_properties["sublattice"]
    idx = [i for i, s in enumerate(sub) if s in ("Na_oct", "Na_prism")]
    return ([list(map(float, frame[i].frac_coords)) for i in idx],
            [sub[i] == "Na_oct" for i in idx])


def run_structures(cfg: PipelineConfig, folder: Path, say: Callable[[str], None]) -> dict:
    """Enumerate, choose and write the campaign's structures; returns the summary dict.

    With ``structures.files`` (``mtpkit learn`` on any system) the files are read instead,
    repeated by ``structures.supercell``, and named by their file stem.
    """
    from ase.io import write

    if cfg.structures.files:
        return _from_files(cfg, folder, say)

    from mtpkit.structures.builders import bare, nyzc75_frame, to_atoms
    from mtpkit.structures.enumerate import enumerate_orderings
    from mtpkit.structures.representatives import box_matrix, md_box_frame, representative_structures

    orderings = enumerate_orderings()
    counts = Counter(o.tm_label for o in orderings)
    say(f"structures: {len(orderings)} symmetry-distinct orderings "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})")
    reps = representative_structures(orderings)
    names = cfg.structures.names or list(reps)
    size = cfg.structures.size
    learn = cfg.structures.learn_size or size
    box_frame = md_box_frame() if size == "box" else None
    out: dict = {"n_orderings": len(orderings), "orderings_by_class": dict(counts), "size": size,
                 "learn_size": learn, "structures": {}}
    for name in names:
        rep = reps[name]
        st = rep.structure if size == "box" else rep.ordering.structure()  # the MD structure
        frame = box_frame if size == "box" else nyzc75_frame(rep.ordering.cell)
        learn_st = st if learn == size else rep.ordering.structure()
        atoms = to_atoms(learn_st)
        atoms.info["name"] = name
        with atomic_open(folder / f"{name}.extxyz", "w") as fh:
            write(fh, atoms, format="extxyz")
        atomic_write_text(folder / f"{name}.cif", bare(learn_st).to(fmt="cif"))
        md_atoms, md_extra = atoms, {}
        if learn != size:
            md_atoms = to_atoms(st)
            md_atoms.info["name"] = name
            with atomic_open(folder / md_file_name(name), "w") as fh:
                write(fh, md_atoms, format="extxyz")
            md_extra = {"md_file": md_file_name(name), "md_supercell": box_matrix(rep.ordering.cell).tolist(),
                        "learn_n_atoms": len(atoms)}
        o = rep.ordering
        study = _study_fields(o, st, frame)
        out["structures"][name] = {
            "file": f"{name}.extxyz", "n_atoms": len(st),
            "formula": md_atoms.get_chemical_formula(),
            **md_extra, **study,
            "volume_A3": float(st.volume),
        }
        where = f" (learning in its {len(atoms)}-atom cell)" if md_extra else ""
        say(f"structures: {name}: {len(st)} atoms{where}, {o.tm_label}, {o.oct_occupancy}% octahedral Na, "
            f"SRO(Y-Y) = {study['sro']['Y-Y']:+.3f}")
    atomic_write_json(folder / "structures.json", out)
    return out


def _from_files(cfg: PipelineConfig, folder: Path, say: Callable[[str], None]) -> dict:
    from ase.build import make_supercell
    from ase.io import read, write

    from mtpkit.errors import InputFileError

    out: dict = {"size": "files", "learn_size": "files", "structures": {}}
    orderings = None  # the study's 8 orderings, enumerated once if a file names one as its reference
    for path in cfg.structures.files:
        name = Path(path).stem
        if name in out["structures"]:
            raise InputFileError(cfg.source, f"two files are named {name!r}; structure names come from "
                                 "the file stems and must differ", field="structures.files")
        try:
            atoms = read(path)
        except Exception as exc:  # noqa: BLE001  # ASE raises many types for unreadable files
            raise InputFileError(path, f"cannot read a structure ({type(exc).__name__}: {exc})",
                                 field="structures.files") from None
        atoms.calc = None
        atoms = atoms.repeat(tuple(cfg.structures.supercell))
        atoms.info = {"name": name}
        with atomic_open(folder / f"{name}.extxyz", "w") as fh:
            write(fh, atoms, format="extxyz")
        md_extra, where = {}, ""
        matrix = cfg.structures.md_supercell_of(name)
        if matrix is not None:
            md_atoms = make_supercell(atoms, np.array(matrix, int))
            with atomic_open(folder / md_file_name(name), "w") as fh:
                write(fh, md_atoms, format="extxyz")
            md_extra = {"md_file": md_file_name(name), "md_supercell": matrix, "learn_n_atoms": len(atoms),
                        "md_n_atoms": len(md_atoms)}
            where = f" (production MD in {len(md_atoms)}-atom boxes)"
        entry = {"file": f"{name}.extxyz", "source": str(path), "n_atoms": len(atoms),
                 "formula": atoms.get_chemical_formula(), "volume_A3": float(atoms.get_volume()), **md_extra}
        ref = cfg.structures.reference.get(name)
        if ref is not None:
            if orderings is None:
                from mtpkit.structures.representatives import representative_orderings

                orderings = representative_orderings()
            entry.update(_study_reference(path, orderings[ref], ref, md_atoms if matrix is not None else atoms,
                                          matrix))
            where += f"; a state of {ref} ({entry['tm_label']}, {entry['oct_occupancy_percent']}% octahedral Na)"
        out["structures"][name] = entry
        say(f"structures: {name}: {len(atoms)} atoms from {path}{where}")
    atomic_write_json(folder / "structures.json", out)
    return out


#: how far (Å) a Na atom of a file may sit from its reference structure's nearest Na site
REFERENCE_SITE_TOLERANCE = 1.5


def _study_reference(path, o, ref: str, md_atoms, matrix) -> dict:
    """What the study structure ``ref`` (its 37-atom ordering ``o``) tells about a file's MD
    structure ``md_atoms``: TM class, octahedral occupancy, ordering, the Y/Zr SRO of the file's
    own atoms and the Na reference sites of the study frame in the MD structure's cell.

    The MD structure must be the reference's 37-atom cell (no ``md_supercell``) or its MD box
    (``md_supercell`` = the study's box matrix), with the reference's composition and every Na
    within :data:`REFERENCE_SITE_TOLERANCE` Å of a Na site of the frame."""
    from mtpkit.analysis.sites import classify_by_reference, octahedral_site_occupancy
    from mtpkit.errors import InputFileError
    from mtpkit.structures.builders import nyzc75_frame
    from mtpkit.structures.representatives import box_matrix, md_box_frame

    field = "structures.reference"
    if matrix is None:
        frame, n_cells = nyzc75_frame(o.cell), 1
    elif np.array_equal(np.array(matrix, int), box_matrix(o.cell)):
        frame, n_cells = md_box_frame(), round(abs(np.linalg.det(box_matrix(o.cell))))
    else:
        raise InputFileError(path, f"md_supercell {matrix} is not {ref}'s MD box {box_matrix(o.cell).tolist()}: "
                             "the Na reference sites are known in the study's cell and box only", field=field)
    want = Counter({el: n * n_cells for el, n in Counter(sp.symbol for sp in o.structure().species).items()})
    have = Counter(md_atoms.get_chemical_symbols())
    if have != want:
        raise InputFileError(path, f"composition {dict(have)} is not that of {ref} ({dict(want)})", field=field)
    study = _study_fields(o, md_atoms, frame)
    site_is_oct = np.array(study["na_sites_oct"], bool)
    _, nearest, dist = classify_by_reference(md_atoms.positions, md_atoms.cell.array, md_atoms.get_chemical_symbols(),
                                             np.array(study["na_sites_frac"]), site_is_oct)
    if dist.max() > REFERENCE_SITE_TOLERANCE:
        na = [a.index for a in md_atoms if a.symbol == "Na"]
        raise InputFileError(path, f"Na atom {na[int(dist.argmax())]} is {dist.max():.2f} Å from every Na site of "
                             f"{ref}'s frame (at most {REFERENCE_SITE_TOLERANCE} Å): not a state of {ref} in its "
                             "cell", field=field)
    return {"reference": ref, **study, "na_site_max_distance_A": float(dist.max()),
            "o_oct_of_file": octahedral_site_occupancy(nearest, site_is_oct)}


def _study_fields(o, sro_of, frame) -> dict:
    """What a structure takes from its study ordering ``o``: TM class, octahedral occupancy (%),
    cell, ordering name, Ewald energy (eV per 37 atoms), the Y/Zr Warren-Cowley SRO of
    ``sro_of`` (the MD structure; 8.5 Å) and the Na reference sites of ``frame`` (fractional)."""
    from mtpkit.structures.sro import warren_cowley

    sro = warren_cowley(sro_of, SRO_SPECIES, SRO_CUTOFF)
    sites, is_oct = _na_reference_sites(frame)
    return {"tm_label": o.tm_label, "oct_occupancy_percent": o.oct_occupancy, "cell": o.cell,
            "ordering": o.name, "ewald_eV_per_37_atoms": o.ewald,
            "sro": {f"{a}-{b}": float(v) for (a, b), v in sro.items()},
            "sro_species": list(SRO_SPECIES), "sro_cutoff_A": SRO_CUTOFF,
            "na_sites_frac": sites, "na_sites_oct": is_oct}


def load_structures(folder: Path) -> dict:
    """The summary written by :func:`run_structures`."""
    import json

    return json.loads((folder / "structures.json").read_text())


def read_structure(folder: Path, name: str):
    """The ASE Atoms of structure ``name`` written by :func:`run_structures` (the
    learning-size structure; also the relaxed one in the relax stage's folder)."""
    from ase.io import read

    atoms = read(folder / f"{name}.extxyz", format="extxyz")
    atoms.calc = None
    return atoms


def md_file_name(name: str) -> str:
    """File name of structure ``name``'s production-MD structure when it differs from the
    learning one (``structures.learn_size``)."""
    return f"{name}_md.extxyz"


def md_structure_file(folder: Path, name: str) -> Path:
    """File of the structure production MD starts from in ``folder`` (stage structures or
    relax): :func:`md_file_name` when learning and MD sizes differ, else ``<name>.extxyz``."""
    md = folder / md_file_name(name)
    return md if md.is_file() else folder / f"{name}.extxyz"


def perturbed_copies(atoms, n: int, rattle: float, strain: float, seed: int) -> list:
    """``n`` copies of ``atoms``: the first unperturbed, copy ``k`` with a random symmetric
    strain (components uniform in ±``strain``) and Gaussian displacements of σ =
    ``rattle``·k/(n−1) Å, so the set spans small to thermal-size distortions."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = atoms.copy()
        a.calc = None
        if k > 0:
            e = rng.uniform(-strain, strain, (3, 3))
            e = 0.5 * (e + e.T)
            a.set_cell(a.cell[:] @ (np.eye(3) + e), scale_atoms=True)
            a.positions += rng.normal(0.0, rattle * k / max(1, n - 1), a.positions.shape)
        out.append(a)
    return out
