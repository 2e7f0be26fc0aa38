"""``mtpkit sweep``: run an MD sweep (structures x temperatures x replicas) from a TOML file."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="run an MD sweep in parallel (local processes or a Dask cluster)",
        description="Run every run of a sweep TOML (see mtpkit.md.sweep for the format). "
                    "Finished runs are skipped, interrupted ones resume, failures are "
                    "reported without stopping the others. With engine 'torch-sim' "
                    "([potential] engine = \"torch-sim\", or --engine torch-sim) the runs "
                    "are integrated as batches on the MTP's torch-sim model in this process, "
                    "on the CPU or a GPU (--device cuda); see mtpkit.md.batched.")
    p.add_argument("sweep_file", help="sweep TOML")
    p.add_argument("--workers", type=int, default=None, help="local worker processes")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--engine", choices=("plugin", "external", "torch-sim"), default=None,
                   help="override [potential] engine (LAMMPS 'plugin' is the default)")
    p.add_argument("--device", default=None,
                   help="torch-sim engine: 'cpu', 'cuda' or 'cuda:N' (overrides [potential] device)")
    p.add_argument("--dtype", choices=("float64", "float32"), default=None,
                   help="torch-sim engine: precision of the model (default float64)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="torch-sim engine: at most N replicas per batch (default: automatic)")
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
    _batched_overrides(spec, args)
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


def _batched_overrides(spec, args: argparse.Namespace) -> None:
    """--engine, --device, --dtype and --batch-size on every run of ``spec``."""
    from mtpkit.errors import UserError
    from mtpkit.md.sweep import BATCHED

    engine = args.engine
    torch_opts = {k: v for k, v in (("device", args.device), ("dtype", args.dtype),
                                    ("batch_size", args.batch_size)) if v is not None}
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.device is not None and not (args.device in ("cpu", "cuda") or (
            args.device.startswith("cuda:") and args.device[5:].isdigit())):
        raise UserError(f"--device must be 'cpu', 'cuda' or 'cuda:N', got {args.device!r}")
    for run in spec.runs:
        if engine is not None:
            if engine != BATCHED and run.extrapolation and engine == "external":
                raise UserError("--engine external has no extrapolation control; the sweep sets one")
            run.engine = engine
        if torch_opts and run.engine != BATCHED:
            raise UserError("--device, --dtype and --batch-size are for engine 'torch-sim' "
                            f"(this sweep's engine is {run.engine!r}; add --engine torch-sim)")
        for key, value in torch_opts.items():
            setattr(run, key, value)
