"""Active learning of MTPs: MaxVol active sets, extrapolation grades, D-optimal selection,
labellers, the label store and the one active-learning engine (``mtpkit learn`` and the
``active_learning`` stage of ``mtpkit run``).

Public API::

    from mtpkit.active_learning import (ActiveSet, build_active_set, select_add, grade_images,
                                        row_blocks, LabellerSpec, label_one, BatchLabeller,
                                        LabelStore, ActiveLearner, LearningPlan)
"""

from __future__ import annotations

__all__ = [
    "ActiveLearner",
    "ActiveSet",
    "BatchLabeller",
    "LabelStore",
    "LabellerSpec",
    "LearningPlan",
    "build_active_set",
    "from_mlip",
    "grade_images",
    "label_one",
    "row_blocks",
    "select_add",
    "to_mlip",
]

_WHERE = {
    "ActiveSet": "active_set", "to_mlip": "active_set", "from_mlip": "active_set",
    "build_active_set": "selection", "select_add": "selection",
    "grade_images": "grades", "row_blocks": "grades",
    "LabellerSpec": "labellers", "label_one": "labellers", "BatchLabeller": "labellers",
    "LabelStore": "store", "ActiveLearner": "engine", "LearningPlan": "engine",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"mtpkit.active_learning.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mtpkit.active_learning' has no attribute {name!r}")
