"""Na–Y–Zr–Cl crystal structures: builders from published data (:mod:`.builders`, a leaf),
NYZC75 ordering enumeration (:mod:`.enumerate`), the 8 representative MD boxes
(:mod:`.representatives`), the registry of named structures (:mod:`.catalog`: ``build``,
``available_structures``) and the Warren–Cowley SRO of a structure (:mod:`.sro`).
Import the submodules directly; nothing is loaded here.

Layering: from the rest of mtpkit this package imports only :mod:`mtpkit.errors` and
:mod:`mtpkit.io_utils` (besides numpy, ASE and pymatgen), never :mod:`mtpkit.analysis` or
the potentials; analysis and campaign code import from here (checked by
tests/test_structures_layering.py).
"""
