"""The MTP as a torch-sim model: batched energy, forces, stress and grades against the compiled core."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from test_core import SPECIES, nyzc_cell, random_mtp

torch = pytest.importorskip("torch")
ts = pytest.importorskip("torch_sim")

from mtpkit import load_potential  # noqa: E402
from mtpkit.active_learning.active_set import from_mlip, to_mlip  # noqa: E402
from mtpkit.active_learning.grades import grade_images, row_blocks  # noqa: E402
from mtpkit.active_learning.selection import build_active_set  # noqa: E402
from mtpkit.errors import UserError  # noqa: E402
from mtpkit.potentials.calculator import MTPCalculator  # noqa: E402
from mtpkit.potentials.potential import Potential  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread(torch_one_thread):
    """Every test here on one torch thread (see conftest)."""


@pytest.fixture(scope="module")
def mtp(motep_data):
    return random_mtp(10, motep_data, seed=14)


def small_cell(seed: int = 0) -> Atoms:
    """Four atoms in a triclinic cell smaller than the cutoff: each atom sees images of itself."""
    rng = np.random.default_rng(seed)
    cell = np.diag([3.9, 4.2, 4.4]) + rng.normal(scale=0.3, size=(3, 3))
    return Atoms(SPECIES, scaled_positions=rng.random((4, 3)), cell=cell, pbc=True)


def batch() -> list[Atoms]:
    """Triclinic Na/Y/Zr/Cl cells of 37, 74, 4 and 37 atoms."""
    return [nyzc_cell(seed=1)[0], nyzc_cell(seed=2, rattle=0.1)[0].repeat((1, 2, 1)), small_cell(3),
            nyzc_cell(seed=4, shear=0.08)[0]]


def voigt(s: np.ndarray) -> np.ndarray:
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def compiled_results(mtp, images):
    calc = MTPCalculator(mtp, species=SPECIES, on_short_distance="ignore")
    return (np.array([calc.get_potential_energy(a) for a in images]),
            np.concatenate([calc.get_forces(a) for a in images]),
            np.array([calc.get_stress(a) for a in images]),
            np.concatenate([calc.get_potential_energies(a) for a in images]))


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_float64_batch_equals_compiled_calculator(mtp):
    images = batch()
    model = Potential(mtp, species=SPECIES).torch_model(device="cpu", dtype=torch.float64)
    assert isinstance(model, ts.models.interface.ModelInterface)
    out = model(ts.io.atoms_to_state(images, CPU, torch.float64))
    energy, forces, stress, sites = compiled_results(mtp, images)
    assert out["energy"].shape == (4,) and out["forces"].shape == (152, 3) and out["stress"].shape == (4, 3, 3)
    np.testing.assert_allclose(out["energy"].numpy(), energy, rtol=1e-10, atol=0)
    assert rel(out["forces"], forces) < 1e-10
    assert rel(out["energies"], sites) < 1e-10
    torch_stress = np.array([voigt(s) for s in out["stress"].numpy()])  # torch-sim's sign is ASE's
    assert rel(torch_stress, stress) < 1e-10
    np.testing.assert_allclose(out["stress"].numpy(), out["stress"].numpy().transpose(0, 2, 1), atol=1e-15)


def test_mlip_trained_potential_and_load_potential(motep_data, tmp_path):
    """A potential written by MLIP itself (its own alpha_index_times order), through load_potential."""
    from mtpkit.potentials.cfg import read_cfg

    d = motep_data / "fitting" / "crystals" / "multi" / "10"
    images = read_cfg(d / "out.cfg")[::250]
    symbols = ["Cu", "Ag", "Au"]
    for a in images:
        a.set_chemical_symbols([symbols[t] for t in a.arrays["mtp_type"]])
    pot = load_potential(d / "pot.mtp", species=symbols)
    out = pot.torch_model()(ts.io.atoms_to_state(images, CPU, torch.float64))
    calc = MTPCalculator(pot, on_short_distance="ignore")
    np.testing.assert_allclose(out["energy"].numpy(), [calc.get_potential_energy(a) for a in images], rtol=1e-10)
    assert rel(out["forces"], np.concatenate([calc.get_forces(a) for a in images])) < 1e-10


def test_float32_error_is_small(mtp):
    """float32 on CPU: measured ~1e-6 relative in energy, ~5e-6 of the largest force/stress component."""
    images = batch()
    model = Potential(mtp, species=SPECIES).torch_model(dtype=torch.float32)
    out = model(ts.io.atoms_to_state(images, CPU, torch.float32))
    assert out["energy"].dtype == torch.float32
    energy, forces, stress, _ = compiled_results(mtp, images)
    np.testing.assert_allclose(out["energy"].double().numpy(), energy, rtol=1e-5)
    assert rel(out["forces"], forces) < 1e-4
    assert rel([voigt(s) for s in out["stress"].double().numpy()], stress) < 1e-4


def training_cells() -> list[Atoms]:
    return [nyzc_cell(seed=s)[0] for s in range(20, 26)]


@pytest.fixture(scope="module")
def almtp_potential(mtp, tmp_path_factory):
    """A neighbourhood-mode MaxVol active set on a few cells, stored in an .almtp and loaded back."""
    train = training_cells()
    aset = build_active_set(row_blocks(mtp, train, "neighborhood", species=SPECIES), train, mode="neighborhood")
    stored = mtp.copy()
    stored.active_set = to_mlip(aset, SPECIES)
    path = tmp_path_factory.mktemp("almtp") / "pot.almtp"
    Potential(stored).save(path)
    return load_potential(path, species=SPECIES)


def test_grades_equal_python_grades(almtp_potential):
    pot = almtp_potential
    images = [training_cells()[2], *batch()]  # a training cell (grades <= 1), then cells away from the set
    ref = grade_images(pot.mtp, from_mlip(pot.active_set), images, SPECIES)
    state = ts.io.atoms_to_state(images, CPU, torch.float64)
    model = pot.torch_model(compute_grades=True)
    per_atom = model.grades(state).numpy()
    np.testing.assert_allclose(per_atom, np.concatenate(ref.per_atom), rtol=1e-8)
    np.testing.assert_allclose(model.system_grades(state).numpy(), ref.config, rtol=1e-8)
    out = model(state)  # the same numbers from forward, next to energy/forces/stress
    np.testing.assert_allclose(out["grades"].numpy(), per_atom, rtol=1e-12)
    np.testing.assert_allclose(out["system_grades"].numpy(), ref.config, rtol=1e-8)
    assert ref.config[0] <= 1.001 + 1e-6 and ref.config[1:].min() > 10  # interpolation vs extrapolation


def test_configuration_mode_grades(mtp):
    train = [nyzc_cell(seed=s, rattle=0.2)[0] for s in range(30, 36)]
    aset = build_active_set(row_blocks(mtp, train, "configuration", species=SPECIES), train, mode="configuration")
    images = batch()
    ref = grade_images(mtp, aset, images, SPECIES).config
    model = Potential(mtp, species=SPECIES).torch_model(active_set=aset)
    np.testing.assert_allclose(model.system_grades(ts.io.atoms_to_state(images, CPU, torch.float64)).numpy(),
                               ref, rtol=1e-8)
    with pytest.raises(UserError, match="neighbourhood-mode"):
        model.grades(ts.io.atoms_to_state(images, CPU, torch.float64))


def test_errors(mtp):
    pot = Potential(mtp)
    with pytest.raises(UserError, match="give the species"):
        pot.torch_model()
    model = pot.torch_model(species=SPECIES)
    with pytest.raises(UserError, match="grades need an active set"):
        model.system_grades(ts.io.atoms_to_state([small_cell()], CPU, torch.float64))
    with pytest.raises(UserError, match="compute_grades needs an active set"):
        pot.torch_model(species=SPECIES, compute_grades=True)
    alien = small_cell()
    alien[1].symbol = "K"
    with pytest.raises(UserError, match="element K is not in the potential's species Na,Y,Zr,Cl"):
        model(ts.io.atoms_to_state([alien], CPU, torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        model(ts.io.atoms_to_state([small_cell()], CPU, torch.float32))


def test_runs_torch_sim_md(mtp):
    """A few batched NVT and NPT steps through torch-sim's own integrators."""
    model = Potential(mtp, species=SPECIES).torch_model()
    images = [nyzc_cell(seed=s, rattle=0.0, shear=0.0)[0] for s in range(2)]
    state = ts.integrate(images, model, integrator=ts.nvt_langevin, n_steps=3, temperature=300.0, timestep=0.001)
    assert state.positions.shape == (74, 3) and torch.isfinite(state.energy).all()
    state = ts.integrate(images, model, integrator=ts.npt_langevin, n_steps=3, temperature=300.0, timestep=0.001,
                         external_pressure=torch.tensor(0.0, dtype=torch.float64))
    assert torch.isfinite(state.cell).all()


def test_import_mtpkit_stays_free_of_torch():
    code = ("import sys, mtpkit, mtpkit.potentials.potential; mtpkit.load_potential; "
            "assert 'torch' not in sys.modules and 'torch_sim' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
