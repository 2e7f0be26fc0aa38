"""Helpers shared by the MD / plugin / sweep tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NYZC_SPECIES = ["Na", "Y", "Zr", "Cl"]
MOTEP_FIT = Path(__file__).parent / ".cache" / "motep-0.2.0" / "tests" / "data_path" / "fitting"


def synthetic_mtp(level_template: Path, species_count: int = 4, seed: int = 0,
                  moment_scale: float = 0.02):
    """A 'trained' MTP with the basis of an MLIP template and seeded random coefficients.

    Only for comparing engines (no physics): radial coefficients ~N(0, 0.1),
    moment coefficients ~N(0, moment_scale), species coefficients -1..-S eV.
    """
    from mtpkit.potentials.model import MTP
    from mtpkit.potentials.mtp_io import read_mtp

    t = read_mtp(level_template)
    rng = np.random.default_rng(seed)
    s, r, b = species_count, t.radial_funcs_count, t.radial_basis_size
    return MTP(
        species_count=s, min_dist=t.min_dist, max_dist=t.max_dist, radial_basis_size=b,
        radial_funcs_count=r, radial_coeffs=rng.normal(0.0, 0.1, (s, s, r, b)),
        alpha_index_basic=t.alpha_index_basic, alpha_index_times=t.alpha_index_times,
        alpha_moment_mapping=t.alpha_moment_mapping, alpha_moments_count=t.alpha_moments_count,
        species_coeffs=-np.arange(1.0, s + 1.0),
        moment_coeffs=rng.normal(0.0, moment_scale, t.alpha_moment_mapping.size),
        scaling=1.0, trained=True,
    )


def nyzc_cell(data_dir: Path, repeat=(1, 1, 1), rattle: float = 0.05, seed: int = 1):
    """The 37-atom NYZC75 P2_1/n model (monoclinic), optionally repeated and rattled."""
    from ase.io import read

    atoms = read(data_dir / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif").repeat(repeat)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def core_efs(mtp, atoms, species):
    """Energy, forces, virial (eV) and site energies from the Python core."""
    from mtpkit.potentials import core

    types = np.array([species.index(s) for s in atoms.get_chemical_symbols()], dtype=np.int32)
    return core.evaluate(mtp, atoms, types, on_short_distance="ignore")


def lammps_with_plugin(potential: Path, atoms, species, extra_style: str = "",
                       newton: str = "on", workdir: Path | None = None,
                       coeff: list[str] | None = None, threads: int = 1):
    """A LAMMPS instance with ``atoms`` (LAMMPS frame) and ``pair_style mtp``; ``run 0`` done.

    ``threads`` > 1 runs the pair style on that many OpenMP threads (``package omp``).
    """
    from mtpkit.md import lammps_env
    from mtpkit.md.structure import lammps_atoms, write_data

    lmp = lammps_env.new_lammps()
    lammps_env.load_plugin(lmp)
    latoms = lammps_atoms(atoms)
    data = (workdir or Path(".")) / "in.data"
    write_data(data, latoms, species)
    if threads > 1:
        lmp.command(f"package omp {threads}")
    for c in [f"newton {newton}", "units metal", "atom_style atomic", "atom_modify map array",
              f"read_data {data}", f"pair_style mtp {potential} {extra_style}",
              "pair_coeff * * " + " ".join(coeff or species),
              "compute pe_atom all pe/atom", "compute v_atom all stress/atom NULL virial",
              "thermo_style custom step pe press", "thermo_modify norm no format float %.17g",
              "run 0"]:
        lmp.command(c)
    return lmp, latoms


def cu_with_active_set(n_configurations: int = 12):
    """MLIP's level-16 Cu MTP (motep's test data) with a neighbourhood active set (all
    coefficients) from its first ``n_configurations`` training configurations:
    (MTP carrying the set as MLIP-3's section, our ActiveSet, the configurations)."""
    import mtpkit
    from mtpkit.active_learning.active_set import ActiveSet as ALSet
    from mtpkit.potentials import core
    from mtpkit.potentials.mtp_io import MVSSection, read_mtp

    folder = MOTEP_FIT / "crystals" / "cubic" / "16"
    mtp = read_mtp(folder / "pot.mtp")
    images = mtpkit.read_cfg(folder / "out.cfg")[:n_configurations]
    aset = ALSet.empty(mtp.n_params, mode="neighborhood", basis="all")
    for k, atoms in enumerate(images):
        rows = core.energy_param_grads(mtp, atoms, np.zeros(len(atoms), np.int32), per_atom=True)
        res = aset.maxvol(rows)
        aset.commit_sources({int(c): (k, int(c)) for c in res.entered})
    aset.refresh_inverse()
    mtp.active_set = MVSSection(energy_weight=0.0, force_weight=0.0, stress_weight=0.0,
                               site_en_weight=1.0, weight_scaling=2, A=aset.A,
                               invA=aset.inv_A.T.copy(), links=aset.sources)
    return mtp, aset, images


def write_cu_almtp(path: Path, n_configurations: int = 12) -> Path:
    """:func:`cu_with_active_set` written as ``.almtp``.

    The active set spans little, so MD at a few hundred K grades above 2 within tens of
    steps: breaks and selections can be forced cheaply with low thresholds.
    """
    from mtpkit.potentials.mtp_io import write_mtp

    mtp, _, _ = cu_with_active_set(n_configurations)
    write_mtp(path, mtp)
    return path
