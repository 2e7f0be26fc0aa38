"""Na–Y–Zr–Cl crystal structures: builders from published data (:mod:`.builders`, a leaf),
NYZC75 ordering enumeration (:mod:`.enumerate`), the 8 representative MD boxes
(:mod:`.representatives`), the registry of named structures (:mod:`.catalog`: ``build``,
``available_structures``).
Import the submodules directly; nothing is loaded here.
"""
