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


RANK0_SCRIPT = textwrap.dedent("""
    import os, sys
    from mtpkit.md import lammps_env
    data, rank0_dir, other_dir = sys.argv[1:4]
    lmp = lammps_env.new_lammps()
    lammps_env.load_plugin(lmp)
    rank = lmp.extract_setting("world_rank")
    os.chdir(rank0_dir if rank == 0 else other_dir)  # only rank 0 can open pot.mtp
    for c in ["units metal", "atom_style atomic", "atom_modify map array", f"read_data {data}",
              "pair_style mtp pot.mtp", "pair_coeff * * Na Y Zr Cl", "run 0"]:
        lmp.command(c)
    pe = lmp.get_thermo("pe")
    if rank == 0:
        print(f"pe {pe!r} nprocs {lmp.extract_setting('world_size')}")
    lmp.close()
""")


def test_potential_file_is_read_on_rank_0_only(setup, tmp_path):
    """The other ranks get the file's contents by broadcast (LAMMPS convention): a potential
    file that only rank 0 can open (another working directory) still works."""
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("mpiexec (mpich wheel) not found")
    script = tmp_path / "rank0.py"
    script.write_text(RANK0_SCRIPT)
    (tmp_path / "other").mkdir()
    args = [str(script), str(setup / "in.data"), str(setup), str(tmp_path / "other")]
    out = {}
    for n in (1, 2):
        cmd = [sys.executable, *args] if n == 1 else [mpiexec, "-n", "2", sys.executable, *args]
        # (a rank that cannot read the file used to stop alone and leave the other hanging)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        line = next(x for x in proc.stdout.splitlines() if x.startswith("pe "))
        _, pe, _, nprocs = line.split()
        assert int(nprocs) == n
        out[n] = float(pe)
    assert abs(out[2] - out[1]) <= 1e-9 * abs(out[1])
