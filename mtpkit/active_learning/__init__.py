"""Active learning of MTPs: MaxVol active sets, extrapolation grades, D-optimal selection,
labellers and the resumable explore-select-label-refit loop (``mtpkit learn``).

Public API::

    from mtpkit.active_learning import (ActiveSet, build_active_set, select_add, grade_images,
                                        row_blocks, LabellerSpec, label_one, BatchLabeller,
                                        load_campaign, Loop, run_campaign)
"""

from __future__ import annotations

__all__ = [
    "ActiveSet",
    "BatchLabeller",
    "LabellerSpec",
    "Loop",
    "build_active_set",
    "from_mlip",
    "grade_images",
    "label_one",
    "load_campaign",
    "row_blocks",
    "run_campaign",
    "select_add",
    "to_mlip",
]

_WHERE = {
    "ActiveSet": "active_set", "to_mlip": "active_set", "from_mlip": "active_set",
    "build_active_set": "selection", "select_add": "selection",
    "grade_images": "grades", "row_blocks": "grades",
    "LabellerSpec": "labellers", "label_one": "labellers", "BatchLabeller": "labellers",
    "load_campaign": "campaign", "Loop": "loop", "run_campaign": "loop",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"mtpkit.active_learning.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mtpkit.active_learning' has no attribute {name!r}")
