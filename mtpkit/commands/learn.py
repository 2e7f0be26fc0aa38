"""``mtpkit learn FILE``: the active-learning part of a campaign.

Reads the same file (and schema) as ``mtpkit run`` and runs its stages up to active
learning: structures (``structures.names`` or ``structures.files``), relaxation,
starting set, active learning. The final potential is printed; ``mtpkit run`` on the
same output folder with ``--resume`` goes on with production and analysis.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mtpkit.commands._campaign import add_config_arguments, load_checked


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "learn", help="active learning: explore with MD, select, label, refit until MD is reliable",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p)
    p.add_argument("--retry-quarantined", action="store_true",
                   help="with --resume: label every quarantined configuration of the store once more first")
    p.add_argument("--check", action="store_true", help="only validate the file (and the labeller) and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtpkit.errors import UserError

    cfg = load_checked(args)
    if args.check:
        where = (f"{len(cfg.structures.files)} structure file(s)" if cfg.structures.files
                 else f"study structures {', '.join(cfg.structures.names) or 'all 8'}")
        print(f"{args.config}: valid at scale {cfg.scale}; labeller {cfg.labeller.kind}, {where}, "
              f"exploration at {', '.join(f'{t:g}' for t in cfg.active_learning.temperatures)} K")
        return 0
    from mtpkit.active_learning.engine import final_potential
    from mtpkit.campaign.orchestrator import FOLDERS, label_store, run_campaign

    output = Path(args.output) if args.output else Path(f"{cfg.campaign.name}-{cfg.scale}")
    if args.retry_quarantined:
        if not args.resume:
            raise UserError("--retry-quarantined needs --resume (it acts on an existing campaign)")
        from mtpkit.active_learning.label_queue import label_pending

        store = label_store(cfg, output.resolve())
        ids = [r.id for r in store.rows(status="quarantined")]
        for rid in ids:
            store.release(rid)
        counts = label_pending(store, rows=set(ids), workers=cfg.campaign.workers,
                               scheduler=cfg.campaign.scheduler or None,
                               in_process=cfg.campaign.workers == 1 and not cfg.campaign.scheduler)
        print(f"relabelled {len(ids)} quarantined label(s) of {store.path}: "
              + ", ".join(f"{k} {v}" for k, v in counts.items()))
    state = run_campaign(cfg, output, resume=args.resume, stop_after="active_learning")
    info = state["stages"].get("active_learning", {})
    print(f"active learning: {info.get('stop_reason', 'not finished')}")
    if info.get("status") == "done":
        print(f"final potential: {final_potential(output.resolve() / FOLDERS['active_learning'])}")
    return 0
