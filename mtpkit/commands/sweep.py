"""``mtpkit sweep``: run an MD sweep (structures x temperatures x replicas) from a TOML file."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="run an MD sweep in parallel (local processes or a Dask cluster)",
        description="Run every run of a sweep TOML (see mtpkit.md.sweep for the format). "
                    "Finished runs are skipped, interrupted ones resume, failures are "
                    "reported without stopping the others.")
    p.add_argument("sweep_file", help="sweep TOML")
    p.add_argument("--workers", type=int, default=None, help="local worker processes")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtpkit.md.sweep import load_sweep, run_sweep

    spec = load_sweep(args.sweep_file)
    if args.workers is not None:
        if args.workers < 1:
            from mtpkit.errors import UserError

            raise UserError(f"--workers must be >= 1, got {args.workers}")
        spec.workers = args.workers
    if args.scheduler:
        spec.scheduler = args.scheduler
    manifest = run_sweep(spec, progress=lambda msg: print(msg, flush=True))
    runs = [manifest["runs"][r.run_id] for r in spec.runs if r.run_id in manifest["runs"]]
    failed = [r for r in spec.runs if manifest["runs"].get(r.run_id, {}).get("status") == "failed"]
    done = sum(1 for e in runs if e.get("status") == "done")
    print(f"sweep: {done}/{len(spec.runs)} runs done, {len(failed)} failed; manifest "
          f"{spec.output / 'manifest.json'}")
    for r in failed:
        entry = manifest["runs"][r.run_id]
        print(f"--- {r.run_id} failed: {entry.get('message', '')}")
        tail = (entry.get("log_tail") or "").rstrip()
        if tail:
            print("\n".join("    " + line for line in tail.splitlines()[-10:]))
    return 1 if failed else 0
