"""Na–Y–Zr–Cl crystal structures: builders from published data (:mod:`.builders`),
NYZC75 ordering enumeration (:mod:`.enumerate`) and the 8 representative MD boxes
(:mod:`.representatives`).  Import the submodules directly; nothing is loaded here."""
