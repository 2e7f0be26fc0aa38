"""Reading a campaign file: TOML → scale preset overlay → paths resolved → validated schema.

Precedence, lowest first::

    schema defaults  <  scales.toml [<scale>]  <  the file's top-level tables
                     <  the file's [scales.<scale>.<table>] tables

A file that lists its own ``structures.files`` ignores the preset's ``[structures]`` table
(the presets choose among the study structures).

Every error is an :class:`~mtpkit.errors.InputFileError` naming the file and the
dotted key (``active_learning.gamma_stop: ...``). Relative paths in the file
(``structures.files``, ``potential.initial``, ``labeller.store``,
``starting_set.initial_training``, ``active_learning.heldout``) are taken relative
to the file's folder; ``package:REL`` names ``REL`` inside mtpkit's data folder
(``mtpkit/data``, e.g. the shipped PBE potential), wherever mtpkit is installed.
"""

from __future__ import annotations

import copy
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mtpkit.config.schema import PipelineConfig
from mtpkit.errors import InputFileError, input_error_from_validation

SCALES = ("tiny", "default", "paper")
#: keys whose values are tables of free-form keyword arguments (merged, not checked key by key here)
_FREE = {("labeller", "parameters"), ("potential", "training"), ("labeller", "batch", "input_parameters")}
_PATHS = (("structures", "files"), ("potential", "initial"), ("labeller", "store"),
          ("starting_set", "initial_training"), ("active_learning", "heldout"))


@lru_cache(maxsize=1)
def scale_presets() -> dict[str, dict]:
    """The scale presets (``scales.toml`` beside this module)."""
    return tomllib.loads((Path(__file__).with_name("scales.toml")).read_text())


def _merge(base: dict, over: dict, where: tuple = ()) -> dict:
    """Deep-merge ``over`` into a copy of ``base`` (free-form tables merge key by key)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        here = (*where, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and here not in _FREE:
            out[key] = _merge(out[key], value, here)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


#: a path that starts with this names a file of the package's data folder (``mtpkit/data``), e.g.
#: ``potential.initial = "package:nyzc75-pbe/pot.almtp"``: the shipped PBE potential, wherever mtpkit is installed
PACKAGE_PREFIX = "package:"


def package_data(relative: str) -> Path:
    """Path of ``relative`` inside the package's data folder (it may not exist). The folder beside
    the package's ``__init__.py``: ``importlib.resources.files`` gives a multiplexed path under an
    editable scikit-build install, whose ``str`` is not a path."""
    import mtpkit

    return Path(mtpkit.__file__).resolve().parent / "data" / relative


def _one_path(value: str, folder: Path, source: Path | None, field: str) -> str:
    if value.startswith(PACKAGE_PREFIX):
        target = package_data(value[len(PACKAGE_PREFIX):])
        if not target.exists():
            raise InputFileError(source, f"{value!r}: no such file in mtpkit's package data ({target})", field=field)
        return str(target)
    return str((folder / value).resolve()) if not Path(value).is_absolute() else value


def _resolve_paths(doc: dict, folder: Path, source: Path | None = None) -> None:
    for table, key in _PATHS:
        section = doc.get(table)
        if not isinstance(section, dict) or key not in section:
            continue
        value, field = section[key], f"{table}.{key}"
        if isinstance(value, str) and value:
            section[key] = _one_path(value, folder, source, field)
        elif isinstance(value, str):
            section[key] = None  # "" means: none
        elif isinstance(value, list):
            section[key] = [_one_path(v, folder, source, field) if isinstance(v, str) else v for v in value]


def build_config(doc: dict | None = None, scale: str = "default",
                 source: str | os.PathLike | None = None) -> PipelineConfig:
    """Resolve a parsed TOML document ``doc`` at ``scale`` (see the module docstring)."""
    path = None if source is None else Path(source)
    if scale not in SCALES:
        raise InputFileError(path, f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}", field="scale")
    doc = copy.deepcopy(doc or {})
    scales = doc.pop("scales", {})
    if not isinstance(scales, dict):
        raise InputFileError(path, "must be a table of scale tables", field="scales")
    for name in scales:
        if name not in SCALES:
            raise InputFileError(path, f"unknown scale (known: {', '.join(SCALES)})", field=f"scales.{name}")
    for key in ("scale", "source"):
        if key in doc:
            raise InputFileError(path, "set by the command line, not in the file", field=key)
    folder = path.parent if path is not None else Path.cwd()
    own = _merge(doc, scales.get(scale, {}))
    _resolve_paths(own, folder, path)
    preset = copy.deepcopy(scale_presets()[scale])
    if own.get("structures", {}).get("files"):
        preset.pop("structures", None)  # a file that brings its own structures replaces the preset's choice
    values: dict[str, Any] = _merge(preset, own)
    values.update(scale=scale, source=None if path is None else str(path))
    try:
        return PipelineConfig.model_validate(values)
    except ValidationError as exc:
        raise input_error_from_validation(path, exc) from None


def read_toml(path: str | os.PathLike, what: str) -> tuple[Path, dict]:
    """(resolved path, parsed document) of the TOML file ``path``; ``what`` names it in errors."""
    path = Path(path).resolve()
    if not path.is_file():
        raise InputFileError(path, f"{what} not found")
    try:
        return path, tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"invalid TOML: {exc}") from None


def load_config(path: str | os.PathLike, scale: str = "default") -> PipelineConfig:
    """Read a campaign TOML file and resolve it at ``scale``."""
    path, doc = read_toml(path, "campaign file")
    return build_config(doc, scale, path)


def dump_toml(cfg: PipelineConfig) -> str:
    """The resolved configuration as TOML (what ``mtpkit config`` prints)."""
    import tomli_w

    data = cfg.to_dict()
    head = {k: data.pop(k) for k in ("scale", "source") if k in data}
    lines = [f"# resolved at scale {head.get('scale')!r}" + (f" from {head['source']}" if "source" in head else "")]
    return "\n".join(lines) + "\n" + tomli_w.dumps(data)
