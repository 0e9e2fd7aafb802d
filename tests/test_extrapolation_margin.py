"""Extrapolation warnings a user can trust (docs/robustness.md, "Extrapolation
is visible"): an atom extrapolates when a descriptor value leaves its training
range widened on both sides by the extrapolation margin (default
_core.DEFAULT_EXTRAPOLATION_MARGIN = 0.1 of the range).

On a potential whose ranges come from the training split of the bundled Si
data (the default descriptor C64 chosen on it, as `nnp train` does), the
validation frames and a 300 K diamond crystal raise no warning at the default
margin, while a liquid collapsed to 3.5 g/cm3 is flagged almost everywhere.
At margin 0 (the bare range) some validation atoms do count: the margin, not
the data, silences them, so the test would fail with the old criterion.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read
from test_lammps_errors import assert_one_error, run_lmp, si_input
from test_lammps_plugin import TINY, diamond, ortho_box, write_data

import nnp.lammps as nnp_lammps
from nnp import NNPCalculator, _core
from nnp.data.frames import split
from nnp.descriptors.selection import resolve
from nnp.io import potential_file as pf

SI_DATA = Path(__file__).resolve().parents[1] / "examples" / "si" / "data" / "train.xyz"
SI_MASS = 28.0855  # g/mol
AVOGADRO = 6.02214076e23


@pytest.fixture(scope="module")
def si_split():
    frames = read(SI_DATA, ":")
    train, validation = split(len(frames), 0.1, 0)
    return [frames[i] for i in train], [frames[i] for i in validation]


@pytest.fixture(scope="module")
def potential(si_split, tmp_path_factory) -> Path:
    """C64 chosen on the training split, scaling ranges from it, a small random
    network (the criterion looks at descriptor ranges only)."""
    training, _ = si_split
    descriptors = resolve("C64", ["Si"], training)
    G = np.vstack([descriptors.compute(atoms) for atoms in training])
    lo, hi = G.min(axis=0), G.max(axis=0)
    scaling = pf.Scaling(center=G.mean(axis=0), width=np.maximum(G.std(axis=0), 1e-6), min=lo, max=hi)
    rng = np.random.default_rng(3)
    M = G.shape[1]
    layers = [pf.Layer(rng.normal(0, 0.3, (8, M)), rng.normal(0, 0.1, 8), "tanh"),
              pf.Layer(rng.normal(0, 0.3, (1, 8)), np.zeros(1), "linear")]
    model = pf.ElementModel(reference_energy=-5.0, scaling=scaling, layers=layers)
    return pf.write(pf.PotentialData(descriptors, {"Si": model}), tmp_path_factory.mktemp("margin") / "Si.nnp")


def flagged(potential: Path, frames, margin: float | None = None) -> tuple[int, int]:
    """(extrapolating atoms, atoms) over `frames`."""
    calc = NNPCalculator(potential, extrapolation_margin=margin)
    count = atoms_seen = 0
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        count += int(calc.results["extrapolating_atoms"])
        atoms_seen += len(atoms)
    return count, atoms_seen


def thermal_diamond(temperature: float, samples: int, seed: int = 0) -> list[Atoms]:
    """3x3x3 diamond cells (216 atoms, a = 5.469 A) with Gaussian displacements
    of the classical harmonic amplitude at `temperature` (Einstein frequency
    of Si, 15 THz): sigma = sqrt(kT / (m w^2)) per coordinate, 0.076 A at 300 K."""
    omega = 2 * np.pi * 15e12  # rad/s
    mass = SI_MASS * 1e-3 / AVOGADRO  # kg
    sigma = np.sqrt(1.380649e-23 * temperature / (mass * omega**2)) * 1e10  # A
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(samples):
        atoms = bulk("Si", "diamond", a=5.469, cubic=True).repeat(3)
        atoms.positions += rng.normal(0.0, sigma, atoms.positions.shape)
        out.append(atoms)
    return out


def collapsed_liquid(density: float, n: int = 64, d_min: float = 2.0, seed: int = 0) -> Atoms:
    """n Si atoms placed at random in a cube of `density` g/cm3, no two closer than d_min A."""
    length = (n * SI_MASS / AVOGADRO / density) ** (1 / 3) * 1e8
    rng = np.random.default_rng(seed)
    atoms = Atoms(cell=[length] * 3, pbc=True)
    while len(atoms) < n:
        trial = atoms + Atoms("Si", positions=[rng.uniform(0, length, 3)])
        if len(trial) == 1 or trial.get_distances(len(trial) - 1, range(len(trial) - 1), mic=True).min() >= d_min:
            atoms = trial
    return atoms


def test_validation_frames_warn_only_without_the_margin(potential, si_split):
    _, validation = si_split
    assert _core.DEFAULT_EXTRAPOLATION_MARGIN == pytest.approx(0.1)
    assert flagged(potential, validation)[0] == 0
    bare, atoms = flagged(potential, validation, margin=0.0)
    assert 0 < bare < 0.02 * atoms  # a few atoms poke just past the bare range


def test_thermal_crystal_raises_no_warning(potential):
    assert flagged(potential, thermal_diamond(300.0, 3)) == (0, 3 * 216)


def test_collapsed_liquid_is_flagged(potential):
    dense = [collapsed_liquid(3.5, seed=s) for s in range(2)]
    count, atoms = flagged(potential, dense)
    assert count > 0.9 * atoms
    # The margin needed to silence it is far beyond thermal noise.
    assert flagged(potential, dense, margin=1.0)[0] > 0.5 * atoms


def test_margin_validation():
    calc = NNPCalculator(TINY)
    assert calc.potential.extrapolation_margin == _core.DEFAULT_EXTRAPOLATION_MARGIN
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="extrapolation margin must be a finite number >= 0"):
            NNPCalculator(TINY, extrapolation_margin=bad)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """64 diamond atoms of the tiny test potential with atom 5 pushed 1.5 A off its site (3 atoms extrapolate at margin 0, 2 at 0.1, none at 0.5)."""
    pos, length = diamond(2, 0.03, seed=41)
    pos[4] += [1.5, 0.0, 0.0]
    data = write_data(tmp_path_factory.mktemp("pushed") / "pushed.data", pos, ortho_box(length))
    return data, Atoms("Si64", positions=pos, cell=[length] * 3, pbc=True)


def lammps_count(data: Path, style: str) -> int:
    lmp = nnp_lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(si_input(data, style=style, after="compute p all pair nnp\nthermo_style custom step c_p[1]"))
        return int(lmp.last_thermo()["c_p[1]"])
    finally:
        lmp.close()


@pytest.mark.parametrize("margin", [None, 0.0, 0.5, 5.0])
def test_lammps_keyword_matches_calculator(pushed, margin):
    data, atoms = pushed
    atoms = atoms.copy()
    atoms.calc = NNPCalculator(TINY, extrapolation_margin=margin)
    atoms.get_potential_energy()
    expected = int(atoms.calc.results["extrapolating_atoms"])
    style = "nnp" if margin is None else f"nnp extrapolation_margin {margin}"
    assert lammps_count(data, style) == expected
    assert expected == {None: 2, 0.0: 3, 0.5: 0, 5.0: 0}[margin]


@pytest.mark.parametrize("value, message", [("-1", "extrapolation_margin M' needs a finite M >= 0, got -1"),
                                            ("abc", "abc"), ("", "'extrapolation_margin' needs a fraction")])
def test_lammps_rejects_a_bad_margin(tmp_path, pushed, value, message):
    data, _ = pushed
    status, output = run_lmp(tmp_path, si_input(data, style=f"nnp extrapolation_margin {value}".strip()))
    assert_one_error(status, output, re.escape(message))
