"""The compiled core at the Python boundary: parameters swapped while other threads
evaluate, no process-wide side effects at import, exceptions inside OpenMP regions,
and integer arguments that do not fit a C ``int``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from test_core import nyzc_cell, random_mtp

from mtpkit import _core
from mtpkit.potentials import core


def _snapshot(efs: core.EFS) -> tuple[float, np.ndarray, np.ndarray]:
    return efs.energy, efs.forces.copy(), efs.virial.copy()


def _same(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])


def test_set_params_while_other_threads_evaluate(motep_data):
    """Each evaluation sees one whole parameter set, never a half-written one."""
    mtp_a = random_mtp(16, motep_data, seed=21)
    params_a = mtp_a.get_params()
    params_b = params_a * 1.3 + 0.01
    atoms, types = nyzc_cell(seed=21)
    atoms, types = atoms * (2, 2, 1), np.tile(types, 4)
    ref_a = _snapshot(core.evaluate(core.CompiledMTP(mtp_a), atoms, types, on_short_distance="ignore"))
    ref_b = _snapshot(core.evaluate(core.CompiledMTP(mtp_a.with_params(params_b)), atoms, types,
                                    on_short_distance="ignore"))
    assert ref_a[0] != ref_b[0]

    cm = core.CompiledMTP(mtp_a)
    stop = threading.Event()
    swaps = [0]
    results: list[tuple[float, np.ndarray, np.ndarray]] = []
    errors: list[BaseException] = []

    def setter() -> None:
        while not stop.is_set():
            cm.set_params(params_b)
            cm.set_params(params_a)
            swaps[0] += 2

    def worker() -> None:
        core.set_num_threads(1)  # this thread's OpenMP setting: long kernels, CPU left to the setter
        try:
            for _ in range(20):
                results.append(_snapshot(core.evaluate(cm, atoms, types, on_short_distance="ignore")))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(2)]
    swapper = threading.Thread(target=setter)
    swapper.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    swapper.join()
    assert not errors, errors
    assert swaps[0] > len(results)  # parameters really changed during the evaluations
    mixed = [k for k, r in enumerate(results) if not (_same(r, ref_a) or _same(r, ref_b))]
    assert not mixed, f"{len(mixed)} of {len(results)} evaluations saw a mix of two parameter sets"
    # the last parameters set are the ones used from now on
    assert _same(_snapshot(core.evaluate(cm, atoms, types, on_short_distance="ignore")), ref_a)
    assert np.array_equal(cm.get_params(), params_a)


def test_set_params_replaces_parameters_and_checks_their_count(motep_data):
    mtp = random_mtp(8, motep_data, seed=22)
    cm = core.CompiledMTP(mtp)
    p0 = cm.get_params()
    cm.set_params(p0 * 2.0)
    assert np.array_equal(cm.get_params(), p0 * 2.0)
    assert np.array_equal(cm.mtp.get_params(), p0 * 2.0)
    with pytest.raises(ValueError, match="expected"):
        cm.set_params(p0[:-1])
    with pytest.raises(ValueError, match="parameter count"):
        cm.model.set_params(p0[:-1])


IMPORT_SCRIPT = """
import json, os, sys
before = dict(os.environ)
import mtpkit
import mtpkit.potentials.core
after = dict(os.environ)
with open("/proc/self/maps") as fh:
    maps = fh.read()
print(json.dumps({"changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
                  "libmpi": "libmpi" in maps}))
"""


def test_import_leaves_environment_unchanged():
    """``import mtpkit`` and the core module set no environment variables (OMP_WAIT_POLICY
    would change every OpenMP library in the process) and load no MPI library."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["changed"] == []
    assert not out["libmpi"]


def test_cli_sets_passive_wait_policy(monkeypatch):
    """The CLI, which starts its own OpenMP work, still asks for sleeping waiters."""
    import os

    from mtpkit import cli

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


# --------------------------------------------------------------------------- OpenMP regions

FAULT_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_core import nyzc_cell, random_mtp
from mtpkit import _core
from mtpkit.potentials import core
from pathlib import Path
mtp = core.compile_mtp(random_mtp(8, Path(sys.argv[2]), seed=23))
atoms, types = nyzc_cell(seed=23)
where = sys.argv[3]
_core._set_failpoint(where, 5)
try:
    if where == "site":
        core.evaluate(mtp, atoms, types, on_short_distance="ignore")
    else:
        core.neighbor_list(atoms, 5.0)
except RuntimeError as exc:
    print("caught:", exc)
_core._set_failpoint("", -1)
efs = core.evaluate(mtp, atoms, types, on_short_distance="ignore")
print("after:", np.isfinite(efs.energy))
"""


@pytest.mark.parametrize("where", ["site", "neighbor"])
def test_exception_inside_openmp_region_reaches_python(where, motep_data, tmp_path):
    """An exception thrown by one thread of a parallel region (e.g. std::bad_alloc while a
    workspace grows) becomes a Python exception instead of std::terminate."""
    from pathlib import Path

    script = tmp_path / "fault.py"
    script.write_text(FAULT_SCRIPT)
    tests_dir = str(Path(__file__).parent)
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, str(script), tests_dir, str(motep_data), where],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stderr[-2000:]}"
    assert f"caught: injected fault ({where} 5)" in proc.stdout, proc.stdout
    assert "after: True" in proc.stdout


def test_failpoint_is_off_by_default():
    with pytest.raises(ValueError, match="failpoint"):
        _core._set_failpoint("nowhere", 1)


# --------------------------------------------------------------------------- narrowing


def test_index_arrays_that_do_not_fit_int_raise(motep_data):
    mtp = random_mtp(8, motep_data, seed=24)
    basic = np.ascontiguousarray(mtp.alpha_index_basic, dtype=np.int64).ravel()
    big = basic.copy()
    big[0] += 2**32  # wraps to the same valid index when narrowed silently

    def build(index_basic):
        return _core.Model(
            int(mtp.species_count), float(mtp.min_dist), float(mtp.max_dist),
            int(mtp.radial_basis_size), int(mtp.radial_funcs_count),
            np.ascontiguousarray(mtp.radial_coeffs, dtype=np.float64).ravel(), index_basic,
            np.ascontiguousarray(mtp.alpha_index_times, dtype=np.int64).ravel(),
            np.ascontiguousarray(mtp.alpha_moment_mapping, dtype=np.int64).ravel(),
            int(mtp.alpha_moments_count),
            np.ascontiguousarray(mtp.species_coeffs, dtype=np.float64),
            np.ascontiguousarray(mtp.moment_coeffs, dtype=np.float64), float(mtp.scaling))

    assert build(basic).n_params == mtp.n_params
    with pytest.raises(ValueError, match=r"alpha_index_basic\[0\] = 4294967\d+ does not fit"):
        build(big)

