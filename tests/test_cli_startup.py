"""Start-up cost of the command line: ``mtpkit --help`` and ``mtpkit evaluate`` import
nothing heavy (no matplotlib, pymatgen, dask, torch, scipy; ``--help`` not even
NumPy, ``evaluate`` on its compiled path only the compiled core), checked in fresh
interpreters."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import replace

import numpy as np

HEAVY = ("numpy", "ase", "scipy", "matplotlib", "pymatgen", "dask", "torch", "mtpkit._core")


def _loaded_after(code: str) -> list[str]:
    """Heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _cpu_seconds(args: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return best


def test_help_and_parser_import_nothing_heavy():
    assert _loaded_after("from mtpkit.cli import build_parser\nbuild_parser()") == []
    assert _loaded_after("import contextlib, io\nfrom mtpkit.cli import main\n"
                         "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
                         "    main(['evaluate', '--help'])") == []


def test_help_starts_in_well_under_a_tenth_of_a_second():
    bare = _cpu_seconds(["-c", "pass"])
    help_ = _cpu_seconds(["-m", "mtpkit.cli", "--help"])
    # the interpreter itself takes ~0.05 s here; mtpkit's own share must stay small
    assert help_ - bare < 0.05, (help_, bare)


def test_evaluate_imports_only_the_compiled_core(tmp_path):
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    from mtpkit.potentials.cfg import write_cfg
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template

    t = make_template(6, 2)
    rng = np.random.default_rng(0)
    mtp = replace(t, min_dist=2.0, radial_coeffs=rng.uniform(-0.02, 0.02, t.radial_coeffs.shape),
                  species_coeffs=rng.normal(size=2), moment_coeffs=rng.normal(size=t.alpha_scalar_moments) * 0.05,
                  trained=True)
    write_mtp(tmp_path / "pot.mtp", mtp)
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((8, 3)), stress=np.zeros(6))
    write_cfg(tmp_path / "in.cfg", [atoms], ["Na", "Cl"])
    args = ["evaluate", str(tmp_path / "pot.mtp"), str(tmp_path / "in.cfg"), "-o", str(tmp_path / "out.cfg"),
            "--species", "Na,Cl"]
    loaded = _loaded_after("import contextlib, io\nfrom mtpkit.cli import main\n"
                           f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main({args!r}) == 0")
    assert loaded == ["mtpkit._core"], loaded  # no NumPy, no ASE: the compiled path end to end
    assert (tmp_path / "out.cfg").exists()
