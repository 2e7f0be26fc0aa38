"""pair_style mtp under MPI domain decomposition (``mpiexec -n 2``) equals the serial run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _md_support import NYZC_SPECIES, nyzc_cell, synthetic_mtp

DATA = Path(__file__).parent / "data"

SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from mtpkit.md import lammps_env
    pot, data, out, newton = sys.argv[1:5]
    lmp = lammps_env.new_lammps()
    lammps_env.load_plugin(lmp)
    for c in [f"newton {newton}", "units metal", "atom_style atomic", "atom_modify map array",
              f"read_data {data}", "replicate 2 1 1", f"pair_style mtp {pot}",
              "pair_coeff * * Na Y Zr Cl", "timestep 0.001",
              "velocity all create 600 4242 mom yes rot no dist gaussian loop geom",
              "fix 1 all nve", "thermo_style custom step pe press pxy",
              "thermo_modify norm no", "run 20"]:
        lmp.command(c)
    n = lmp.get_natoms()
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3), shape=(3 * n,))
    f = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3), shape=(3 * n,))
    pe, press, pxy = (lmp.get_thermo(k) for k in ("pe", "press", "pxy"))
    if lmp.extract_setting("world_rank") == 0:
        np.savez(out, x=x, f=f, pe=pe, press=press, pxy=pxy,
                 nprocs=lmp.extract_setting("world_size"))
    lmp.close()
""")


def _mpiexec() -> str | None:
    local = Path(sys.executable).parent / "mpiexec"
    return str(local) if local.exists() else shutil.which("mpiexec")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, motep_data):
    from mtpkit.md.structure import lammps_atoms, write_data
    from mtpkit.potentials.mtp_io import write_mtp

    d = tmp_path_factory.mktemp("mpi")
    write_mtp(d / "pot.mtp", synthetic_mtp(motep_data / "fitting" / "crystals" / "cubic" / "16"
                                           / "initial.mtp", moment_scale=0.002))
    write_data(d / "in.data", lammps_atoms(nyzc_cell(DATA, rattle=0.03)), NYZC_SPECIES)
    (d / "run.py").write_text(SCRIPT)
    return d


def _run(d: Path, nprocs: int, newton: str) -> dict:
    out = d / f"out_{nprocs}_{newton}.npz"
    cmd = [sys.executable, str(d / "run.py"), str(d / "pot.mtp"), str(d / "in.data"), str(out),
           newton]
    if nprocs > 1:
        mpiexec = _mpiexec()
        if mpiexec is None:
            pytest.skip("mpiexec (mpich wheel) not found")
        cmd = [mpiexec, "-n", str(nprocs), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return dict(np.load(out))


@pytest.mark.parametrize("newton", ["on", "off"])
def test_serial_vs_mpi_identical(setup, newton):
    serial = _run(setup, 1, "on")
    par = _run(setup, 2, newton)
    assert int(par["nprocs"]) == 2
    assert abs(par["pe"] - serial["pe"]) <= 1e-9 * abs(serial["pe"])
    np.testing.assert_allclose(par["x"], serial["x"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(par["f"], serial["f"], rtol=0, atol=1e-8)
    assert abs(par["press"] - serial["press"]) <= 1e-6 * max(1.0, abs(serial["press"]))
    assert abs(par["pxy"] - serial["pxy"]) <= 1e-6 * max(1.0, abs(serial["pxy"]))
