"""The end-to-end NYZC75 campaign: structures → labels → active learning → production MD →
transport analysis → fidelity check → report (``mtpkit run campaign.toml``).

:mod:`.config` (TOML + ``--scale`` presets), :mod:`.orchestrator` (resumable stages),
one module per stage, :mod:`.report` (Markdown + HTML). Import the submodules directly.
"""
