"""Batched MD throughput: torch-sim engine vs the LAMMPS plugin, 296-atom NYZC75 box.

Atom-steps per second of NPT (tri) MD at 600 K, 1 fs, for batches of 1, 8, 40 and 320
replicas of the 296-atom NYZC75-like box (2x2x2 of the 37-atom P2_1/n model, rattled
differently per replica), with the level-16 basis of MLIP's template and seeded random
coefficients (cost does not depend on the values; bench_md.py's potential with moment
coefficients ten times smaller, so that the box does not heat up while timed):

  * torch-sim: mtpkit.md.batched.BatchIntegrator (one model evaluation per step for the
    whole batch, CSVR thermostat + stochastic cell rescaling) on --device, --dtype;
    on the CPU torch uses --cores threads (default 1);
  * LAMMPS plugin: `pair_style mtp` with `fix npt ... tri` on the same --cores: N
    replicas run as min(N, cores) concurrent single-thread processes (one replica: also
    one process on `cores` OpenMP threads, the faster counts), which is how a sweep runs
    them; throughput = all atom-steps / wall time of the slowest process.

Also printed: atom-steps per CPU-second (the work over the CPU time the engine's
processes used), a per-core cost that other jobs on the machine disturb less than the
wall-clock numbers. On the CPU more torch threads than free cores is much slower, not
faster (OpenMP barriers), so compare at the core count that is really free.

Each measurement runs in its own process (clean memory, peak RSS reported). A batch is
skipped when the memory its predecessor used, scaled to its size, would exceed 70 % of
the memory available (CPU) or when CUDA runs out of memory. Prints the table side by side.

    python benchmarks/bench_batched.py                       # CPU, 1 core, float64
    python benchmarks/bench_batched.py --cores 2 --dtype float64 float32 --replicas 1 8 40

GPU run (one command, a few minutes on an H100; LAMMPS on the same machine's CPU cores):

    python benchmarks/bench_batched.py --device cuda --dtype float32 float64 --cores $(nproc)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _md_support import NYZC_SPECIES, nyzc_cell, synthetic_mtp  # noqa: E402

TEMPLATE = ROOT / "tests/.cache/motep-0.2.0/tests/data_path/fitting/crystals/cubic/{level}/initial.mtp"


def box(seed: int):
    from mtpkit.md.structure import lammps_atoms

    atoms = lammps_atoms(nyzc_cell(ROOT / "tests" / "data", repeat=(2, 2, 2), rattle=0.02, seed=seed))
    assert len(atoms) == 296
    return atoms


def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# --------------------------------------------------------------------------- workers


def torch_worker(pot: str, replicas: int, steps: int, device: str, dtype: str, threads: int) -> dict:
    import torch

    import mtpkit
    from mtpkit.md.batched import BatchIntegrator, ReplicaRandom, initial_velocities
    from mtpkit.md.run import MDSettings

    if device == "cpu":
        torch.set_num_threads(threads)
    model = mtpkit.load_potential(pot).torch_model(species=NYZC_SPECIES, device=device,
                                                   dtype=getattr(torch, dtype))
    atoms = [box(k) for k in range(replicas)]
    randoms = [ReplicaRandom(k + 1) for k in range(replicas)]
    vel = [initial_velocities(a, 600.0, r.velocity) for a, r in zip(atoms, randoms)]
    settings = MDSettings(ensemble="npt", barostat="tri", timestep=1.0, temperature=600.0)
    integ = BatchIntegrator(model, atoms, [600.0] * replicas, settings, vel)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    try:
        integ.evaluate()
        integ.update_pressure()
        noise = integ.draw_noise(randoms, steps + 1)
        integ.step(noise, 0)  # warm-up
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        for k in range(1, steps + 1):
            integ.step(noise, k)
        sync()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    except torch.cuda.OutOfMemoryError:
        return {"oom": True}
    out = {"s_per_step": wall / steps, "atom_steps_per_s": replicas * 296 * steps / wall,
           "atom_steps_per_cpu_s": replicas * 296 * steps / cpu,
           "peak_rss_gib": peak_rss_gib(), "T_K": float(integ.temperature().mean())}
    if device.startswith("cuda"):
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def lammps_worker(pot: str, steps: int, threads: int, seed: int) -> dict:
    from mtpkit.md import lammps_env
    from mtpkit.md.structure import write_data

    work = Path(tempfile.mkdtemp(prefix="bench_batched_"))
    lmp = lammps_env.new_lammps(extra_args=["-pk", "omp", str(threads)] if threads > 1 else None)
    lammps_env.load_plugin(lmp)
    write_data(work / "in.data", box(seed), NYZC_SPECIES)
    for c in ["units metal", "atom_style atomic", "atom_modify map array",
              f"read_data {work / 'in.data'}", "timestep 0.001", "neighbor 1.0 bin",
              f"pair_style mtp {pot}", "pair_coeff * * " + " ".join(NYZC_SPECIES),
              f"velocity all create 600 {seed + 1} mom yes rot no dist gaussian",
              "fix npt all npt temp 600 600 0.1 tri 0 0 1.0", "thermo 100000", "run 1"]:
        lmp.command(c)
    t0, c0 = time.perf_counter(), time.process_time()
    lmp.command(f"run {steps}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    lmp.close()
    return {"s_per_step": wall / steps, "wall": wall, "cpu": cpu}


# --------------------------------------------------------------------------- driver


def run_worker(args: list[str], timeout: float) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-400:]}
    return json.loads(lines[-1])


def lammps_throughput(pot: str, replicas: int, cores: int, steps: int, threads: int = 1) -> dict:
    """min(replicas, cores) concurrent plugin processes of ``threads`` OpenMP threads."""
    n_proc = min(replicas, cores)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", "lammps", "--pot", pot,
                               "--steps", str(steps), "--threads", str(threads), "--seed", str(k)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(n_proc)]
    results = []
    for p in procs:
        out, err = p.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if p.returncode != 0 or not lines:
            return {"error": err[-400:]}
        results.append(json.loads(lines[-1]))
    # throughput of the runs themselves (set-up excluded): all atom-steps over the slowest run
    wall = max(r["wall"] for r in results)
    return {"atom_steps_per_s": n_proc * 296 * steps / wall, "processes": n_proc, "threads": threads,
            "atom_steps_per_cpu_s": n_proc * 296 * steps / sum(r["cpu"] for r in results),
            "s_per_step": float(np.mean([r["s_per_step"] for r in results])),
            "total_wall": time.perf_counter() - t0}


def mem_available_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", nargs="+", default=["float64"], choices=["float64", "float32"])
    ap.add_argument("--replicas", nargs="+", type=int, default=[1, 8, 40, 320])
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps per torch-sim batch (default: 3 on CPU, 20 on CUDA)")
    ap.add_argument("--lammps-steps", type=int, default=200, help="timed steps per LAMMPS process")
    ap.add_argument("--cores", type=int, default=1,
                    help="CPU cores for torch (CPU) and for the LAMMPS processes (default 1)")
    ap.add_argument("--level", default="16", help="MTP level of the synthetic potential (MLIP template)")
    ap.add_argument("--no-lammps", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    ap.add_argument("--worker", choices=["torch", "lammps"], help=argparse.SUPPRESS)
    ap.add_argument("--pot", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "torch":
        print(json.dumps(torch_worker(args.pot, args.replicas[0], args.steps, args.device, args.dtype[0],
                                      args.threads)))
        return
    if args.worker == "lammps":
        print(json.dumps(lammps_worker(args.pot, args.steps, args.threads, args.seed)))
        return

    from mtpkit.potentials.mtp_io import write_mtp

    steps = args.steps or (20 if args.device.startswith("cuda") else 3)
    work = Path(tempfile.mkdtemp(prefix="bench_batched_"))
    pot = work / f"syn{args.level}.mtp"
    # small moment coefficients: gentle forces, so the box keeps its density over the timed
    # steps (bench_md.py's 0.002 heats it to ~2700 K within 4 steps); cost does not depend on them
    write_mtp(pot, synthetic_mtp(Path(str(TEMPLATE).format(level=args.level)), moment_scale=0.0002))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False,
                            capture_output=True, text=True).stdout.strip()
    device_name = args.device
    if args.device.startswith("cuda"):
        import torch

        device_name = f"{args.device} ({torch.cuda.get_device_name(0)})"
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(using {args.cores}); torch-sim on {device_name}; commit {commit}; 296-atom NYZC75 box, "
          f"level {args.level}, NPT tri 600 K, 1 fs; load average {os.getloadavg()[0]:.1f}", flush=True)

    rows = []
    for dtype in args.dtype:
        seen: list[tuple[int, float]] = []  # (replicas, peak RSS GiB) of the batches run
        for n in args.replicas:
            if args.device == "cpu" and seen:
                (n0, m0), (n1, m1) = seen[0], seen[-1]
                per = (m1 - m0) / (n1 - n0) if n1 > n0 else m1 / n1
                need = m1 + per * (n - n1)
                if need > 0.7 * mem_available_gib():
                    rows.append((dtype, n, {"skipped": f"~{need:.0f} GiB needed"}))
                    print(f"torch-sim {dtype} x{n}: skipped (memory, ~{need:.0f} GiB)", flush=True)
                    continue
            res = run_worker(["torch", "--pot", str(pot), "--replicas", str(n), "--steps", str(steps),
                              "--device", args.device, "--dtype", dtype, "--threads", str(args.cores)],
                             args.timeout)
            if "peak_rss_gib" in res:
                seen.append((n, res["peak_rss_gib"]))
            rows.append((dtype, n, res))
            print(f"torch-sim {dtype} x{n}: {res}", flush=True)
    lammps = {}
    if not args.no_lammps:
        for n in sorted({min(n, args.cores) for n in args.replicas}):
            lammps[n] = lammps_throughput(str(pot), n, args.cores, args.lammps_steps)
            print(f"LAMMPS plugin, {n} replica(s) on {args.cores} cores: {lammps[n]}", flush=True)
            if n == 1 and args.cores > 1:  # one replica: also one process on all cores (OpenMP)
                omp = lammps_throughput(str(pot), 1, args.cores, args.lammps_steps, threads=args.cores)
                print(f"LAMMPS plugin, 1 replica on {args.cores} OpenMP threads: {omp}", flush=True)
                if omp.get("atom_steps_per_s", 0) > lammps[1].get("atom_steps_per_s", 0):
                    lammps[1] = omp

    print()
    print("atom-steps/s: wall clock, all cores; per CPU-s: the same work over the CPU time the "
          "engine's process(es) used (less sensitive to other jobs on the machine)")
    print(f"| replicas | atoms | torch-sim dtype | torch-sim s/step | torch-sim atom-steps/s | "
          f"torch-sim per CPU-s | LAMMPS plugin atom-steps/s ({args.cores} cores) | LAMMPS per CPU-s | "
          "torch-sim / LAMMPS (wall) |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for dtype, n, res in rows:
        lam = lammps.get(min(n, args.cores), {}) if lammps else {}
        lam_rate = lam.get("atom_steps_per_s")
        if "atom_steps_per_s" in res:
            ts_cell = f"{res['s_per_step']:.3g} | {res['atom_steps_per_s']:.4g} | {res['atom_steps_per_cpu_s']:.4g}"
            ratio = f"{res['atom_steps_per_s'] / lam_rate:.3g}" if lam_rate else "—"
        else:
            why = "out of memory" if res.get("oom") else res.get("skipped") or "error: " + res.get("error", "")[-80:]
            ts_cell, ratio = f"— | {why} | —", "—"
        lam_cell = (f"{lam_rate:.4g} ({lam['processes']}×{lam['threads']} thr) | {lam['atom_steps_per_cpu_s']:.4g}"
                    if lam_rate else "— | —")
        print(f"| {n} | {296 * n} | {dtype} | {ts_cell} | {lam_cell} | {ratio} |")


if __name__ == "__main__":
    main()
