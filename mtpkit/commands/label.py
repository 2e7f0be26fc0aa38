"""``mtpkit label STORE``: compute every pending label of a label store (DFT or any labeller).

Each pending row carries its labeller settings; rows are labelled one per worker
process, lowest priority first, each finished label committed at once. Stop it at any
time (Ctrl-C, kill): the next call continues with the rows still pending.
``--snapshot PATH`` keeps a consistent copy of the store at PATH after every label (a
copy that is safe to commit while labelling goes on). ``--status`` prints the store's
counts per subset and status and exits.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("label", help="compute the pending labels of a label store (resumable)",
                              description=__doc__)
    p.add_argument("store", help="label store (SQLite file written by mtpkit.active_learning.store)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per worker (default 1)")
    p.add_argument("--subset", default=None, help="label only rows of this subset")
    p.add_argument("--limit", type=int, default=None, help="label at most this many rows")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--snapshot", default=None, metavar="PATH",
                   help="after every label, write a consistent copy of the store to PATH (safe to commit)")
    p.add_argument("--status", action="store_true", help="print the counts and exit")
    p.add_argument("--follow", type=float, default=0.0, metavar="SECONDS",
                   help="when nothing is pending, look again every SECONDS for rows a running campaign "
                        "requests, until stopped (a second labeller beside `mtpkit learn`)")
    p.add_argument("--max-priority", type=int, default=None, metavar="N",
                   help="label only rows of priority <= N (a campaign requests its labels at 100): with "
                        "--follow, a second labeller waits for the campaign's next requests instead of "
                        "starting a lower-priority row when an iteration's labels run out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    from collections import Counter
    from pathlib import Path

    from mtpkit.active_learning.store import LabelStore
    from mtpkit.errors import UserError

    if not Path(args.store).is_file():
        raise UserError(f"{args.store}: no such label store")
    if args.workers < 1 or args.threads < 1:
        raise UserError("--workers and --threads must be at least 1")
    if args.follow < 0 or (args.follow and args.limit is not None):
        raise UserError("--follow takes a positive number of seconds, and not with --limit")
    store = LabelStore(args.store)
    if args.status:
        counts = Counter((r.keys["subset"], r.status) for r in store.rows())
        for subset in sorted({s for s, _ in counts}):
            print(f"{subset:16s} " + "  ".join(f"{st} {counts[(subset, st)]}"
                                              for st in ("ok", "pending", "quarantined")))
        return 0
    import time

    from mtpkit.active_learning.label_queue import label_pending

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    while True:
        counts = label_pending(store, workers=args.workers, threads=args.threads, scheduler=args.scheduler,
                               subset=args.subset, limit=args.limit, max_priority=args.max_priority,
                               after_each=(lambda: store.snapshot(args.snapshot)) if args.snapshot else None)
        print(f"label store {args.store}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        if not args.follow:
            return 0
        # wait for a row this process may take: a pending row another live process is labelling (the
        # campaign's own worker) is not one, or this loop would spin on it
        while not [r for r in store.pending_by_priority(subset=args.subset, max_priority=args.max_priority)
                   if not store.claimed_elsewhere(r)]:
            time.sleep(args.follow)
