"""``mtpkit run``: the end-to-end campaign of one TOML file.

    mtpkit run examples/nyzc75.toml --scale tiny [--output DIR] [--resume]

Stages: structures, relax, starting_set, active_learning, production, analysis,
fidelity, report (see :mod:`mtpkit.campaign.orchestrator`); the report is
``DIR/report.md`` and ``DIR/report.html``. The file's schema is
:mod:`mtpkit.config.schema`; ``mtpkit config FILE --scale S`` prints it resolved.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mtpkit.commands._campaign import add_config_arguments, load_checked


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run (or resume) an end-to-end campaign described by a TOML file",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p)
    p.add_argument("--stop-after", metavar="STAGE",
                   help="stop once this stage is finished (continue later with --resume)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mtpkit.campaign.orchestrator import run_campaign

    cfg = load_checked(args)
    output = Path(args.output) if args.output else Path(f"{cfg.campaign.name}-{cfg.scale}")
    state = run_campaign(cfg, output, resume=args.resume, stop_after=args.stop_after)
    report = state["stages"].get("report", {})
    if report.get("status") == "done":
        print(f"report: {report['markdown']}")
    return 0
