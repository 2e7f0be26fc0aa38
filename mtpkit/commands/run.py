"""``mtpkit run``: the end-to-end campaign of one TOML file.

    mtpkit run examples/nyzc75.toml --scale tiny [--output DIR] [--resume]

Stages: structures, starting_set, active_learning, production, analysis, fidelity,
report (see :mod:`mtpkit.campaign.orchestrator`); the report is ``DIR/report.md`` and
``DIR/report.html``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run (or resume) an end-to-end campaign described by a TOML file",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="campaign TOML file (e.g. examples/nyzc75.toml)")
    p.add_argument("--scale", choices=("tiny", "default", "paper"), default="default",
                   help="size preset: tiny (minutes, 2 cores), default (laptop, < 1 h), paper "
                        "(the reference study's sizes)")
    p.add_argument("--output", "-o", help="campaign folder (default ./<name>-<scale>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the campaign in the output folder; finished stages are skipped")
    p.add_argument("--stop-after", metavar="STAGE",
                   help="stop once this stage is finished (continue later with --resume)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mtpkit.campaign.config import load_config
    from mtpkit.campaign.orchestrator import run_campaign

    cfg = load_config(args.config, args.scale)
    output = Path(args.output) if args.output else Path(f"{cfg['campaign']['name']}-{cfg.scale}")
    state = run_campaign(cfg, output, resume=args.resume, stop_after=args.stop_after)
    report = state["stages"].get("report", {})
    if report.get("status") == "done":
        print(f"report: {report['markdown']}")
    return 0
