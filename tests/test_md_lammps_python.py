"""The README's LAMMPS-from-Python snippet runs as written in a fresh process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from _md_support import NYZC_SPECIES, core_efs, nyzc_cell, synthetic_mtp

README = Path(__file__).resolve().parent.parent / "README.md"

RUNNER = """
import sys
exec(sys.argv[1])  # the README snippet: defines lmp
print("pe", repr(lmp.get_thermo("pe")), "has_mtp", lmp.has_style("pair", "mtp"))
"""


def _readme_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    snippet = [b for b in blocks if "from mtpkit.md import lammps" in b]
    assert len(snippet) == 1, "README: expected one Python block with 'from mtpkit.md import lammps'"
    return snippet[0]


def test_readme_lammps_python_snippet(motep_data, data_dir, tmp_path):
    from mtpkit.md.structure import lammps_atoms, write_data
    from mtpkit.potentials.mtp_io import write_mtp

    mtp = synthetic_mtp(motep_data / "fitting" / "crystals" / "cubic" / "08" / "initial.mtp")
    write_mtp(tmp_path / "pot.mtp", mtp)
    atoms = lammps_atoms(nyzc_cell(data_dir, rattle=0.05))
    write_data(tmp_path / "in.data", atoms, NYZC_SPECIES)
    (tmp_path / "in.lmp").write_text("units metal\natom_style atomic\nread_data in.data\n"
                                     "pair_style mtp pot.mtp\npair_coeff * * Na Y Zr Cl\n"
                                     "thermo_modify norm no\nrun 0\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    proc = subprocess.run([sys.executable, "-c", RUNNER, _readme_snippet()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("pe "))
    _, pe, _, has_mtp = line.split()
    assert has_mtp == "True"
    ref = core_efs(mtp, atoms, NYZC_SPECIES).energy
    assert abs(float(pe) - ref) <= 1e-10 * max(1.0, abs(ref))
    assert not (tmp_path / "log.lammps").exists()  # cmdargs reached LAMMPS


def test_lammps_helper_is_lazy():
    """``import mtpkit.md`` alone loads neither LAMMPS nor the MPI library."""
    code = ("import mtpkit.md, sys\n"
            "maps = open('/proc/self/maps').read()\n"
            "print('lammps' in sys.modules, 'libmpi' in maps, 'liblammps' in maps)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False", "False"]
