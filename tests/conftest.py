"""Shared fixtures: one set of structures and one potential for every layer
(the torch model, the C++ core through nnp._core, LAMMPS)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from nnp.io import potential_file as pf
from nnp.descriptors import G2, G4, G5, DescriptorSet

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SI_DATA = REPO / "examples" / "si" / "data" / "train.xyz"
# Data sets that may not be copied into this repository (GPL/LGPL sources);
# they sit beside the clone in ../shared/data, each folder with its provenance.
SHARED_DATA = REPO.parent / "shared" / "data"
REQUIRE_SHARED_DATA = "NNP_REQUIRE_SHARED_DATA"


def shared_data(relative: str) -> Path:
    """The path of ../shared/data/<relative>. Without it the calling test is
    skipped (a user's fresh clone has no ../shared), unless the environment
    sets NNP_REQUIRE_SHARED_DATA=1 (CI does), where a missing file fails."""
    path = SHARED_DATA / relative
    if not path.exists():
        reason = f"shared data {path} is absent (it cannot be copied into this BSD repository; see its README)"
        if os.environ.get(REQUIRE_SHARED_DATA) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_SHARED_DATA}=1 requires it")
        pytest.skip(reason)
    return path


def assert_refused_at_line(path: Path, line: int, words: str) -> None:
    """Both readers (Python's potential_file.read and the C++ core's) refuse
    `path` with a message that starts with "path:line:" and contains `words`."""
    from nnp import _core

    for read in (pf.read, lambda p: _core.Potential(str(p))):
        with pytest.raises(ValueError) as err:
            read(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}:{line}:"), msg
        assert words.lower() in msg.lower(), msg


def rattled_si(repeat=(1, 1, 1), amplitude=0.1, seed=0, a=5.43) -> Atoms:
    atoms = bulk("Si", "diamond", a=a, cubic=True).repeat(repeat)
    atoms.rattle(amplitude, seed=seed)
    return atoms


def triclinic_si(seed=1) -> Atoms:
    """A strongly sheared 16-atom Si cell, rattled."""
    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 2, 2))
    cell = atoms.cell.array.copy()
    cell[2] += 0.3 * cell[0] - 0.2 * cell[1]
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.08, seed=seed)
    return atoms


def si_cluster(seed=2) -> Atoms:
    """An open (non-periodic) cluster cut from rattled diamond."""
    atoms = rattled_si((2, 2, 2), 0.1, seed)
    centre = atoms.positions.mean(axis=0)
    keep = np.linalg.norm(atoms.positions - centre, axis=1) < 5.0
    cluster = atoms[keep]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    return cluster


def test_descriptor(rc: float = 4.2, cutoff_function: str = "cos", angular_sum: str = "half",
                    elements=("Si",)) -> DescriptorSet:
    """A small descriptor mixing every function type, two cutoffs and rs > 0."""
    funcs = []
    for e in elements:
        funcs += [G2(e, 0.05, 0.0, rc), G2(e, 0.4, 0.0, rc), G2(e, 1.0, 2.3, rc), G2(e, 0.2, 0.0, rc - 0.7)]
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    for p in pairs:
        funcs += [
            G4(p, 0.01, 1.0, 1, 0.0, rc),
            G4(p, 0.01, 2.0, -1, 0.0, rc),
            G4(p, 0.03, 4.0, 1, 0.0, rc),
            G4(p, 0.01, 2.5, 1, 0.5, rc),  # non-integer ζ, shifted
            G5(p, 0.02, 1.0, -1, 0.0, rc),
            G5(p, 0.02, 16.0, 1, 0.0, rc),
            G5(p, 0.05, 2.0, 1, 0.0, rc - 0.7),
        ]
    return DescriptorSet(tuple(elements), {e: tuple(funcs) for e in elements}, cutoff_function, angular_sum)


test_descriptor.__test__ = False  # a factory, not a test


def random_potential(descriptors: DescriptorSet, structures, hidden=(8, 6), activation="tanh",
                     seed=0, quadratic: bool = False) -> pf.PotentialData:
    """A potential with random weights and scaling fitted to `structures`
    (and, with `quadratic`, a random quadratic term for every element).

    The networks are random but smooth and O(1), so energies and forces have
    realistic magnitudes: a demanding fixture for agreement tests.
    """
    rng = np.random.default_rng(seed)
    models = {}
    for e in descriptors.elements:
        G = np.concatenate([descriptors.featurize(s, derivatives=False)[e]["G"] for s in structures])
        center = G.mean(axis=0)
        width = np.maximum(G.std(axis=0), 1e-3)
        scaling = pf.Scaling(center, width, G.min(axis=0) - 0.01, G.max(axis=0) + 0.01)
        sizes = [descriptors.size(e), *hidden, 1]
        layers = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            w = rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_out, n_in)) * (0.3 if last else 1.0)
            b = rng.normal(0.0, 0.1, n_out)
            layers.append(pf.Layer(w, b, "linear" if last else activation))
        q = None
        if quadratic:
            M = descriptors.size(e)
            A = rng.normal(0.0, 0.05, (M, M))
            q = pf.QuadraticTerm(rng.normal(0.0, 0.1, M), 0.5 * (A + A.T))
        models[e] = pf.ElementModel(-5.4 + 0.1 * rng.normal(), scaling, layers, q)
    return pf.PotentialData(descriptors, models, ["random test potential"])


@pytest.fixture(scope="session")
def si_structures():
    return [rattled_si((2, 2, 2), 0.1, 0), triclinic_si(1), si_cluster(2)]


@pytest.fixture(scope="session")
def si_potential(tmp_path_factory, si_structures) -> Path:
    """Path of a random Si potential (every function type) written by nnp.io.potential_file."""
    pot = random_potential(test_descriptor(), si_structures)
    path = tmp_path_factory.mktemp("pot") / "Si_random.nnp"
    pf.write(pot, path)
    return path


@pytest.fixture(scope="session")
def si_quadratic_potential(tmp_path_factory, si_structures) -> Path:
    """As si_potential, with a quadratic term (format version 3)."""
    pot = random_potential(test_descriptor(), si_structures, seed=4, quadratic=True)
    path = tmp_path_factory.mktemp("pot") / "Si_random_quadratic.nnp"
    pf.write(pot, path)
    return path


@pytest.fixture(scope="session")
def sic_potential(tmp_path_factory) -> Path:
    """A random two-element (Si, C) potential."""
    d = test_descriptor(elements=("Si", "C"))
    structures = [mixed_sic(s) for s in range(3)]
    pot = random_potential(d, structures, seed=3)
    path = tmp_path_factory.mktemp("pot") / "SiC_random.nnp"
    pf.write(pot, path)
    return path


def mixed_sic(seed=0) -> Atoms:
    atoms = rattled_si((1, 1, 2), 0.1, seed)
    rng = np.random.default_rng(seed)
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[rng.choice(len(atoms), len(atoms) // 3, replace=False)] = "C"
    atoms.set_chemical_symbols(symbols.tolist())
    return atoms
