"""Benchmark: `mtpkit conductivity` on a 2 ns, 296-atom, 10 fs-interval, 5-replica trajectory set
versus calling pymatgen-analysis-diffusion's DiffusionAnalyzer naively on the same data.

    python benchmarks/bench_analysis.py [--ns 2] [--replicas 5] [--workdir DIR] [--keep] [--skip-naive]

The data: NYZC75-like box (72 Na, 8 Y, 24 Zr, 192 Cl = 296 atoms, 15.0 x 14.7 x 20.3 Å),
Na hopping 3 Å at 0.2 /ps among vibrating framework atoms, written as LAMMPS text dumps
``id type xu yu zu`` (4 decimals) every 10 fs: 200 001 frames and ~2.7 GB per replica.

* mtpkit: the CLI in a subprocess (default --max-frames 10000, 2 reader processes); wall time and
  peak memory (sum of RSS over the process tree, sampled every 50 ms).
* naive: per replica, every frame parsed into a (296, n_frames, 3) displacement array and
  ``DiffusionAnalyzer(structure, disp, "Na", T, 10, 1)`` (smoothed="max") on it, replica D's
  averaged; same measurements, one replica after the other in one subprocess.

Prints both and their ratio.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mtpkit.analysis.trajectory import write_lammps_dump  # noqa: E402

COUNTS = {"Na": 72, "Y": 8, "Zr": 24, "Cl": 192}
TYPE_MAP = ["Na", "Y", "Zr", "Cl"]
CELL = np.diag([15.0, 14.7, 20.3])
T_K = 600.0
DT_FS = 10.0
HOP_RATE = 2e-4  # per fs
HOP_A = 3.0


def generate(path: Path, n_frames: int, seed: int, chunk: int = 4000) -> None:
    """Write one replica in chunks of frames (bounded memory)."""
    rng = np.random.default_rng(seed)
    symbols = [s for s in TYPE_MAP for _ in range(COUNTS[s])]
    n = len(symbols)
    mobile = np.array([s == "Na" for s in symbols])
    base = rng.uniform(0, 1, (n, 3)) @ CELL
    offset = np.zeros((int(mobile.sum()), 3))
    path.unlink(missing_ok=True)
    done = 0
    while done < n_frames:
        m = min(chunk, n_frames - done)
        hops = rng.random((m, mobile.sum())) < HOP_RATE * DT_FS
        axis = rng.integers(0, 3, hops.shape)
        sign = rng.choice([-HOP_A, HOP_A], hops.shape)
        steps = np.zeros((m, mobile.sum(), 3))
        for ax in range(3):
            steps[..., ax] = np.where(hops & (axis == ax), sign, 0.0)
        if done == 0:
            steps[0] = 0.0
        traj = offset[None] + np.cumsum(steps, axis=0)
        offset = traj[-1]
        pos = np.broadcast_to(base, (m, n, 3)).copy()
        pos[:, mobile] += traj
        pos += rng.normal(0, 0.1, pos.shape)
        write_lammps_dump(path, symbols, CELL, pos, timesteps=np.arange(done, done + m) * 10,
                          type_map=TYPE_MAP, mode="a")
        done += m


def measure(cmd: list[str], env=None) -> tuple[float, float, int, str, float]:
    """(wall s, peak tree RSS GB, return code, output, CPU s (user+sys of the whole tree))."""
    import resource

    import psutil

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak = 0
    stop = False
    out_chunks: list[str] = []

    def reader():
        out_chunks.append(proc.stdout.read())

    th = threading.Thread(target=reader)
    th.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None and not stop:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs if p.is_running())
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    proc.wait()
    th.join()
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return wall, peak / 1e9, proc.returncode, "".join(out_chunks), cpu


NAIVE = textwrap.dedent("""
    import sys, time, numpy as np
    from pymatgen.core import Lattice, Structure
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from mtpkit.analysis.trajectory import open_trajectory
    paths, T, dt = sys.argv[1:-2], float(sys.argv[-2]), float(sys.argv[-1])
    ds = []
    for p in paths:
        traj = open_trajectory(p, type_map=["Na", "Y", "Zr", "Cl"])
        disp = np.empty((traj.n_atoms, traj.n_frames, 3))
        first = None
        for k, f in enumerate(traj.frames()):
            if first is None:
                first = f
            disp[:, k] = f.positions - first.positions
        s = Structure(Lattice(first.cell), traj.symbols, first.positions, coords_are_cartesian=True)
        da = DiffusionAnalyzer(s, disp, "Na", T, dt, 1, smoothed="max")
        ds.append(da.diffusivity)
        print(f"{p}: D = {da.diffusivity:.4e} cm2/s", flush=True)
        del da, disp
    print(f"naive mean D = {np.mean(ds):.4e} +- {np.std(ds, ddof=1) / np.sqrt(len(ds)):.1e} cm2/s")
""")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", type=float, default=2.0)
    ap.add_argument("--replicas", type=int, default=5)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated trajectories")
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mtpkit_bench_analysis_"))
    work.mkdir(parents=True, exist_ok=True)
    n_frames = round(args.ns * 1e6 / DT_FS) + 1
    paths = [work / f"rep{r}.dump" for r in range(args.replicas)]
    t0 = time.perf_counter()
    for r, p in enumerate(paths):
        if not (p.is_file() and (work / f"rep{r}.ok").is_file()):
            generate(p, n_frames, seed=r)
            (work / f"rep{r}.ok").write_text(str(n_frames))
    gen = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in paths) / 1e9
    print(f"data: {args.replicas} x {n_frames} frames x 296 atoms, {size:.1f} GB ({gen:.0f} s to generate)")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    cmd = [sys.executable, "-m", "mtpkit.cli", "conductivity"]
    for p in paths:
        cmd += ["--trajectory", str(p), "--temperature", str(T_K)]
    cmd += ["--frame-interval-fs", str(DT_FS), "--species", "Na", "--type-map", *TYPE_MAP,
            "--output", str(work / "out")]
    load0 = os.getloadavg()[0]
    wall, peak, rc, out, cpu = measure(cmd, env)
    print(out.strip())
    if rc != 0:
        print(f"mtpkit conductivity failed (rc={rc})")
        return 1
    doc = json.loads((work / "out" / "results.json").read_text())
    t = doc["temperatures"][0]
    expected = HOP_A**2 * HOP_RATE / 6 * 0.1
    print(f"mtpkit : {wall:7.1f} s wall  {cpu:7.1f} s CPU  peak {peak:5.2f} GB  D = {t['D']:.4e} +- "
          f"{t['D_err']:.1e} cm2/s (expected a^2 G/6 = {expected:.4e}; load average before {load0:.1f})")
    rows = {"mtpkit": (wall, peak, t["D"])}
    if not args.skip_naive:
        script = work / "naive.py"
        script.write_text(NAIVE)
        load1 = os.getloadavg()[0]
        wall_n, peak_n, rc_n, out_n, cpu_n = measure([sys.executable, str(script), *map(str, paths), str(T_K),
                                                      str(DT_FS)], env)
        print(out_n.strip())
        if rc_n != 0:
            print(f"naive DiffusionAnalyzer failed (rc={rc_n})")
        else:
            print(f"naive  : {wall_n:7.1f} s wall  {cpu_n:7.1f} s CPU  peak {peak_n:5.2f} GB "
                  f"(load average before {load1:.1f})")
            print(f"ratio naive/mtpkit: wall {wall_n / wall:.1f}x, CPU {cpu_n / cpu:.1f}x, "
                  f"peak memory {peak_n / peak:.1f}x")
            rows["naive"] = (wall_n, peak_n, None)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; commit {commit}")
    print(f"targets: < 60 s, < 2 GB -> wall {'met' if wall < 60 else 'NOT met'}, CPU "
          f"{'met' if cpu < 60 else 'NOT met'}, memory {'met' if peak < 2 else 'NOT met'}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
