"""``mtpkit learn campaign.toml [--resume]``: the active-learning loop."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "learn", help="active learning: explore with MD, select, label, refit until MD is reliable",
        description="Run (or resume) an active-learning campaign described by a TOML file "
                    "(schema: mtpkit.active_learning.campaign). Bad input is reported, naming the key, "
                    "before any work starts.")
    p.add_argument("campaign", help="campaign TOML file")
    p.add_argument("--resume", action="store_true", help="continue the campaign in its folder after an interruption")
    p.add_argument("--retry-quarantined", action="store_true",
                   help="with --resume: label the quarantined configurations once more in the next label phase")
    p.add_argument("--check", action="store_true", help="only validate the TOML (and labeller import) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtpkit.active_learning.campaign import load_campaign
    from mtpkit.active_learning.loop import Loop

    camp = load_campaign(args.campaign)
    if args.check:
        print(f"{args.campaign}: valid; folder {camp.folder}, labeller {camp.labeller.kind}, "
              f"{len(camp.structures.files)} structures x {len(camp.exploration.temperatures)} temperatures")
        return 0
    from mtpkit.commands import UserError

    loop = Loop(camp, log=None if args.quiet else (lambda m: print(m, flush=True)))
    if args.retry_quarantined:
        if not args.resume:
            raise UserError("--retry-quarantined needs --resume (it acts on an existing campaign)")
        print(f"released {loop.retry_quarantined()} quarantined configurations for relabelling")
    state = loop.start(resume=args.resume)
    summary = json.loads((camp.folder / "summary.json").read_text())
    print(f"stopped after iteration {state.iteration}: {state.stop_reason}")
    print(f"labels {summary['labels']}, quarantined {summary['quarantined']}, wall {summary['wall_time_s']:.1f} s "
          f"(MD {summary['md_time_s']:.1f}, labelling {summary['label_time_s']:.1f}, training "
          f"{summary['train_time_s']:.1f}, bookkeeping {100 * summary['bookkeeping_share']:.1f} %)")
    return 0
