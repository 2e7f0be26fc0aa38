"""The installed ``mtpkit`` program (src/cli_main.cpp): ``mtpkit evaluate`` runs in C++
without Python and must give what the Python command line ``mtpkit-py`` gives (output
bytes, printed lines, exit status); everything else is handed to ``mtpkit-py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from test_cfg_compiled import SHORT, files, make_potential  # noqa: F401  (files: fixture)


def installed(name: str) -> Path:
    """An installed program of this interpreter's mtpkit (its scripts folder, else PATH)."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.is_file():
        found = shutil.which(name)
        assert found, f"`{name}` is not installed: pip install -e ."
        path = Path(found)
    return path


def outcome(program: Path, args: list[str], out: Path | None, cwd: Path | None = None):
    """(exit status, stdout, stderr, output bytes or None) of one run."""
    if out is not None and out.exists():
        out.unlink()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([str(program), *args], check=False, capture_output=True, text=True, env=env, cwd=cwd)
    return r.returncode, r.stdout, r.stderr, out.read_bytes() if out is not None and out.exists() else None


def assert_same(args: list[str], out: Path | None) -> tuple:
    """Run the compiled program and the Python command line with the same arguments; both outcomes equal."""
    native = outcome(installed("mtpkit"), args, out)
    python = outcome(installed("mtpkit-py"), args, out)
    assert native == python
    return native


def test_the_command_is_the_compiled_program():
    with open(installed("mtpkit"), "rb") as f:
        assert f.read(4) == b"\x7fELF"
    with open(installed("mtpkit-py"), "rb") as f:
        assert f.read(2) == b"#!"


@pytest.mark.parametrize("name", ["periodic", "no_stress", "cluster", "direct", "features", "mixed",
                                  "unlabelled", "short"])
def test_evaluate_same_as_the_python_command_line(files, tmp_path, name):  # noqa: F811
    out = tmp_path / "out.cfg"
    for extra in ([], ["--species", "Na,Cl"], ["--species= Na , Cl"]):
        status, stdout, stderr, data = assert_same(["evaluate", str(files / "pot.mtp"), str(files / f"{name}.cfg"),
                                                    "--output", str(out), *extra], out)
        assert status == 0 and stdout.startswith("wrote ") and data
        assert ("warning: 2 of 2 configurations have atoms closer" in stderr) == (name == "short")


def test_argument_forms(files, tmp_path):  # noqa: F811
    pot, cfg, out = str(files / "pot.mtp"), str(files / "periodic.cfg"), tmp_path / "o.cfg"
    for args in ([pot, cfg, "-o", str(out)], [pot, "--output=" + str(out), cfg],
                 ["--species", "Na,Cl", pot, cfg, "-o", str(out)],
                 [pot, cfg, "--out", str(out)],  # abbreviation: argparse's, through mtpkit-py
                 [pot, cfg, f"-o{out}"], [pot, cfg, "-o", str(out), "--output", str(out)]):
        status, stdout, _, data = assert_same(["evaluate", *args], out)
        assert status == 0 and f"to {out}" in stdout and data


def test_errors_same_as_the_python_command_line(files, tmp_path):  # noqa: F811
    pot, out = files / "pot.mtp", tmp_path / "out.cfg"
    three = tmp_path / "three.mtp"
    make_potential(three, species_count=3)
    wide = tmp_path / "wide.cfg"
    wide.write_text(SHORT.replace("    3 1 0.0 2.8", "    3 2 0.0 2.8"))
    bad = tmp_path / "bad.cfg"
    bad.write_text(SHORT.replace("    -1.0", "    minus one"))
    empty = tmp_path / "empty.cfg"
    empty.write_text(SHORT + "BEGIN_CFG\n Size\n 0\n AtomData: id type cartes_x cartes_y cartes_z fx fy fz\n"
                     " Energy\n 0.0\nEND_CFG\n")
    periodic = files / "periodic.cfg"
    for potential, cfg, extra, text in [
        (pot, wide, [], "type 2 is outside 0..1"),
        (pot, periodic, ["--species", "Na,Cl,K"], "--species gives 3 symbols but"),
        (three, periodic, ["--species", "Na,Na"], "contains duplicates"),
        (pot, periodic, ["--species", "Na,Xx"], "unknown chemical symbol 'Xx'"),
        (pot, periodic, ["--species", " , "], "give comma-separated"),
        (pot, tmp_path / "missing.cfg", [], "missing.cfg: cannot read: No such file or directory"),
        (pot, bad, [], "bad.cfg"),
        (pot, empty, [], "configuration has no atoms"),
        (tmp_path / "missing.mtp", periodic, [], "missing.mtp"),
    ]:
        status, _, stderr, _ = assert_same(["evaluate", str(potential), str(cfg), "-o", str(out), *extra], out)
        assert status == 2 and "mtpkit evaluate: error:" in stderr and text in stderr, stderr


def test_unwritable_output_same_as_the_python_command_line(files, tmp_path):  # noqa: F811
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, _, stderr, _ = assert_same(["evaluate", str(files / "pot.mtp"), str(files / "periodic.cfg"), "-o",
                                        str(blocker / "out.cfg")], None)
    assert status == 2 and "out.cfg" in stderr


def test_other_commands_are_handed_to_python():
    assert_same(["--version"], None)
    assert_same(["evaluate", "--help"], None)
    status, _, stderr, _ = assert_same(["no-such-command"], None)
    assert status == 2 and "invalid choice" in stderr


def test_evaluate_runs_without_python(files, tmp_path):  # noqa: F811
    """A copy of the program alone in a folder (no mtpkit-py beside it) still evaluates, so the
    run above did not go through Python; anything else says what is missing."""
    alone = tmp_path / "bin" / "mtpkit"
    alone.parent.mkdir()
    shutil.copy2(installed("mtpkit"), alone)
    out = tmp_path / "out.cfg"
    args = ["evaluate", str(files / "pot.mtp"), str(files / "periodic.cfg"), "--species", "Na,Cl", "-o", str(out)]
    assert outcome(alone, args, out) == outcome(installed("mtpkit-py"), args, out)
    status, _, stderr, _ = outcome(alone, ["--version"], None)
    assert status == 127 and f"cannot start the Python command line {alone.parent}/mtpkit-py" in stderr
