"""Physics and bookkeeping of the torch model (nnp.model.network) and the training
features (nnp.data.FeaturizedDataset), on small fixtures.

The descriptors come from the C++ core (`DescriptorSet.featurize`); the
brute-force torch reference in reference_descriptors.py checks the core, and
finite differences check both the reference and the model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import reference_descriptors as ref
from nnp.io import potential_file
from nnp.data import FeaturizedDataset
from nnp.descriptors import G2, G4, G5, DescriptorSet
from nnp import _core
from nnp.model.network import ACTIVATIONS, NNPModel, Softplus, contract_pairs, scatter_pairs

# These tensors are tiny: one thread is fastest, and on a loaded 2-core machine
# several threads are slower by an order of magnitude.
torch.set_num_threads(1)

# ------------------------------------------------------------------ fixtures


def core_featurizer(ds: DescriptorSet):
    return lambda atoms: ds.featurize(atoms, derivatives=True)


def ref_featurizer(ds: DescriptorSet):
    return lambda atoms: ref.featurize(ds, atoms)


def mixed_descriptors(cutoff_function: str = "cos", angular_sum: str = "half") -> DescriptorSet:
    """Two elements with different descriptor lengths, every function type,
    R_s > 0, non-integer ζ and two cutoff radii."""
    si = (
        G2("Si", 0.05, 0.0, 4.2),
        G2("C", 0.2, 1.0, 3.6),
        G4(("Si", "Si"), 0.01, 1.0, 1, 0.0, 4.2),
        G4(("C", "Si"), 0.02, 2.0, -1, 0.0, 4.2),
        G5(("C", "C"), 0.005, 4.0, 1, 0.0, 3.6),
        G5(("Si", "C"), 0.01, 1.5, -1, 0.5, 4.2),
    )
    c = (
        G2("Si", 0.1, 0.0, 4.2),
        G2("C", 0.03, 0.0, 4.2),
        G4(("Si", "C"), 0.01, 1.0, -1, 0.0, 4.2),
        G5(("Si", "Si"), 0.02, 2.0, 1, 0.0, 3.6),
        G4(("C", "C"), 0.0, 16.0, 1, 0.0, 4.2),
    )
    return DescriptorSet(("Si", "C"), {"Si": si, "C": c}, cutoff_function, angular_sum)


def sic(seed: int = 0) -> Atoms:
    """8-atom zincblende SiC cell, strained and rattled (periodic, orthorhombic)."""
    a = bulk("SiC", "zincblende", a=4.36, cubic=True)
    a.set_cell(a.cell.array @ np.diag([1.0, 1.03, 0.98]), scale_atoms=True)
    a.rattle(0.08, seed=seed)
    return a


def si_triclinic(seed: int = 1) -> Atoms:
    """2-atom primitive diamond cell, sheared: many periodic images of each atom."""
    a = bulk("Si", "diamond", a=5.43)
    a.set_cell(a.cell.array @ np.array([[1.0, 0.04, 0.0], [0.0, 1.0, -0.03], [0.02, 0.0, 1.0]]), scale_atoms=True)
    a.rattle(0.05, seed=seed)
    return a


def si_c_cluster() -> Atoms:
    """A small non-periodic mixed cluster."""
    rng = np.random.default_rng(3)
    pos = np.array([[0, 0, 0], [1.9, 0.1, 0], [0.2, 1.8, 0.3], [1.1, 1.0, 1.6], [-1.2, 0.8, 1.1]], float)
    return Atoms("SiCSiCSi", positions=pos + rng.normal(0, 0.05, pos.shape), pbc=False)


def make_model(ds: DescriptorSet, structures, featurize, hidden=(8, 6), activation="tanh", seed=0) -> NNPModel:
    model = NNPModel(ds, hidden, activation)
    model.init_weights(seed)
    data = FeaturizedDataset.from_structures(structures, ds, featurize)
    model.fit_scaling(data)
    with torch.no_grad():
        model.reference_energy("Si").fill_(-5.4)
        model.reference_energy("C").fill_(-7.1)
    return model


@pytest.fixture(scope="module")
def ds():
    return mixed_descriptors()


@pytest.fixture(scope="module")
def featurize(ds):
    return core_featurizer(ds)


@pytest.fixture(scope="module")
def model(ds, featurize):
    return make_model(ds, [sic(), si_triclinic(), si_c_cluster()], featurize)


# ----------------------------------------------- the descriptors themselves


def _analytic_dG_drk(feat: dict, element: str, k: int) -> np.ndarray:
    """∂G_i/∂r_k (n_e, M, 3) from the pair Jacobian: +dG_dr over entries whose
    neighbour is k, −dG_dr over entries whose centre is k (r_ij = r_j − r_i)."""
    f = feat[element]
    out = np.zeros(f["G"].shape + (3,))
    centre_atom = f["atoms"][f["pair_center"]]
    for p in range(len(f["pair_center"])):
        if f["pair_neighbor"][p] == k:
            out[f["pair_center"][p]] += f["dG_dr"][p]
        if centre_atom[p] == k:
            out[f["pair_center"][p]] -= f["dG_dr"][p]
    return out


@pytest.mark.parametrize("cutoff_function", ["cos", "tanh3"])
@pytest.mark.parametrize("angular_sum", ["half", "full"])
def test_reference_jacobian_matches_finite_differences(cutoff_function, angular_sum):
    ds = mixed_descriptors(cutoff_function, angular_sum)
    atoms = sic()
    feat = ref.featurize(ds, atoms)
    h = 1e-5
    for k in (0, 5):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, c] += h
            minus.positions[k, c] -= h
            fp, fm = ref.featurize(ds, plus, False), ref.featurize(ds, minus, False)
            for e in ds.elements:
                numeric = (fp[e]["G"] - fm[e]["G"]) / (2 * h)
                analytic = _analytic_dG_drk(feat, e, k)[:, :, c]
                np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_reference_angular_conventions():
    """'full' angular sums are twice 'half'; radial functions are unchanged."""
    atoms = sic()
    half = ref.featurize(mixed_descriptors("cos", "half"), atoms, False)
    full = ref.featurize(mixed_descriptors("cos", "full"), atoms, False)
    for e, funcs in mixed_descriptors().functions.items():
        factor = np.array([1.0 if isinstance(sf, G2) else 2.0 for sf in funcs])
        np.testing.assert_allclose(full[e]["G"], half[e]["G"] * factor, rtol=1e-13)


def test_reference_hand_computed_values():
    """A three-atom molecule by hand: G2 and G4/G5 of the apex atom."""
    rc, eta, zeta = 5.0, 0.1, 2.0
    ds = DescriptorSet(
        ("Si",),
        {"Si": (G2("Si", eta, 0.0, rc), G4(("Si", "Si"), eta, zeta, 1, 0.0, rc), G5(("Si", "Si"), eta, zeta, -1, 0.0, rc))},
        "cos",
        "half",
    )
    atoms = Atoms("Si3", positions=[[0, 0, 0], [2.0, 0, 0], [0, 3.0, 0]], pbc=False)
    G = ref.featurize(ds, atoms, False)["Si"]["G"][0]
    fc = lambda r: 0.5 * (np.cos(np.pi * r / rc) + 1)  # noqa: E731
    rij, rik, rjk = 2.0, 3.0, np.sqrt(13.0)
    g2 = np.exp(-eta * rij**2) * fc(rij) + np.exp(-eta * rik**2) * fc(rik)
    common = 2 ** (1 - zeta) * np.exp(-eta * (rij**2 + rik**2)) * fc(rij) * fc(rik)  # cosθ = 0
    g4 = common * np.exp(-eta * rjk**2) * fc(rjk)
    g5 = common
    np.testing.assert_allclose(G, [g2, g4, g5], rtol=1e-14)


def _sorted_pairs(f: dict) -> np.ndarray:
    """Order of neighbour entries by (centre atom, neighbour atom, vector)."""
    v = np.round(f["pair_vector"], 6)
    return np.lexsort((v[:, 2], v[:, 1], v[:, 0], f["pair_neighbor"], f["atoms"][f["pair_center"]]))


@pytest.mark.parametrize("cutoff_function", ["cos", "tanh3"])
@pytest.mark.parametrize("angular_sum", ["half", "full"])
def test_core_matches_reference(cutoff_function, angular_sum):
    ds = mixed_descriptors(cutoff_function, angular_sum)
    for atoms in (sic(), si_triclinic(), si_c_cluster()):
        core, want = ds.featurize(atoms, derivatives=True), ref.featurize(ds, atoms)
        for e in ds.elements:
            c, r = core[e], want[e]
            np.testing.assert_array_equal(np.asarray(c["atoms"]), r["atoms"])
            np.testing.assert_allclose(c["G"], r["G"], rtol=1e-11, atol=1e-13)
            # Same neighbour entries (up to order), same Jacobian.
            c = {k: np.asarray(v) for k, v in c.items()}
            assert len(c["pair_center"]) == len(r["pair_center"])
            oc, orf = _sorted_pairs(c), _sorted_pairs(r)
            np.testing.assert_array_equal(c["atoms"][c["pair_center"][oc]], r["atoms"][r["pair_center"][orf]])
            np.testing.assert_array_equal(c["pair_neighbor"][oc], r["pair_neighbor"][orf])
            np.testing.assert_allclose(c["pair_vector"][oc], r["pair_vector"][orf], atol=1e-12)
            np.testing.assert_allclose(c["dG_dr"][oc], r["dG_dr"][orf], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------ model physics


def _energy(model, atoms, featurize) -> float:
    return model.predict(atoms, featurize, stress=False)[0]["energy"]


@pytest.mark.parametrize("make", [sic, si_triclinic, si_c_cluster])
def test_forces_are_minus_energy_gradient(model, featurize, make):
    atoms = make()
    forces = model.predict(atoms, featurize, stress=False)[0]["forces"]
    h = 1e-4
    for k in range(min(len(atoms), 3)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, c] += h
            minus.positions[k, c] -= h
            numeric = -(_energy(model, plus, featurize) - _energy(model, minus, featurize)) / (2 * h)
            assert forces[k, c] == pytest.approx(numeric, abs=1e-7, rel=1e-6)


@pytest.mark.parametrize("make", [sic, si_triclinic])
def test_stress_is_strain_derivative(model, featurize, make):
    """σ_ab = (1/V) ∂E/∂ε_ab for the deformation r -> (1 + ε) r (cell too)."""
    atoms = make()
    stress = model.predict(atoms, featurize)[0]["stress"]
    h = 1e-5
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                F = np.eye(3)
                F[a, b] += sign * h
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ F.T, scale_atoms=True)
                energies.append(_energy(model, strained, featurize))
            numeric[a, b] = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
    np.testing.assert_allclose(stress, numeric, atol=1e-8)
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)


def test_stress_is_nan_without_periodic_cell(model, featurize):
    r = model.predict(si_c_cluster(), featurize)[0]
    assert np.isnan(r["stress"]).all() and np.isfinite(r["forces"]).all()


def test_translation_rotation_permutation_invariance(model, featurize):
    atoms = sic()
    base = model.predict(atoms, featurize)[0]
    # Translation (atoms wrapped back into the cell afterwards).
    moved = atoms.copy()
    moved.positions += [0.7, -1.3, 2.9]
    moved.wrap()
    r = model.predict(moved, featurize)[0]
    assert r["energy"] == pytest.approx(base["energy"], abs=1e-10)
    np.testing.assert_allclose(r["forces"], base["forces"], atol=1e-10)
    np.testing.assert_allclose(r["stress"], base["stress"], atol=1e-12)
    # Rotation of positions and cell: E unchanged, F and σ rotate.
    rot = torch.linalg.matrix_exp(torch.tensor([[0, 0.3, -0.5], [-0.3, 0, 0.8], [0.5, -0.8, 0]], dtype=torch.float64)).numpy()
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=True)
    r = model.predict(turned, featurize)[0]
    assert r["energy"] == pytest.approx(base["energy"], abs=1e-10)
    np.testing.assert_allclose(r["forces"], base["forces"] @ rot.T, atol=1e-10)
    np.testing.assert_allclose(r["stress"], rot @ base["stress"] @ rot.T, atol=1e-12)
    # Permutation of the atoms.
    order = np.random.default_rng(0).permutation(len(atoms))
    r = model.predict(atoms[order], featurize)[0]
    assert r["energy"] == pytest.approx(base["energy"], abs=1e-10)
    np.testing.assert_allclose(r["forces"], base["forces"][order], atol=1e-10)


def test_forces_sum_to_zero_and_energy_is_sum_of_atoms(model, featurize, ds):
    data = FeaturizedDataset.from_structures([sic(), si_c_cluster()], ds, featurize)
    out = model(data.collate([0, 1]))
    np.testing.assert_allclose(out["forces"].sum(0).detach().numpy(), 0, atol=1e-11)
    per_struct = torch.zeros(2, dtype=torch.float64).index_add(0, data.atom_struct, out["atom_energy"])
    torch.testing.assert_close(per_struct, out["energy"])


def test_forces_also_under_no_grad(model, featurize, ds):
    data = FeaturizedDataset.from_structures([sic()], ds, featurize)
    batch = data.collate([0])
    want = model(batch, stress=True)
    with torch.no_grad():
        got = model(batch, stress=True)
    for key in ("energy", "forces", "stress"):
        assert torch.equal(got[key], want[key].detach()), key


def test_batch_equals_single_structures(model, featurize, ds):
    structures = [sic(0), si_triclinic(), si_c_cluster(), sic(4)]
    data = FeaturizedDataset.from_structures(structures, ds, featurize)
    order = [3, 1, 0, 2]
    batch = data.collate(order)
    out = model(batch, stress=True)
    offsets = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), batch.n_atoms]), 0)
    for pos, s in enumerate(order):
        single = model(data.collate([s]), stress=True)
        torch.testing.assert_close(out["energy"][pos], single["energy"][0], rtol=1e-13, atol=1e-12)
        torch.testing.assert_close(out["forces"][offsets[pos] : offsets[pos + 1]], single["forces"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out["stress"][pos], single["stress"][0], rtol=1e-12, atol=1e-13, equal_nan=True)
        # The batch carries the labels and geometry of the right structures.
        assert batch.n_atoms[pos] == len(structures[s])


def test_collate_keeps_labels(ds, featurize):
    structures = [sic(0), si_c_cluster()]
    for k, a in enumerate(structures):
        rng = np.random.default_rng(k)
        a.calc = SinglePointCalculator(a, energy=-10.0 * (k + 1), forces=rng.normal(size=(len(a), 3)))
    data = FeaturizedDataset.from_structures(structures, ds, featurize)
    batch = data.collate([1, 0])
    np.testing.assert_array_equal(batch.energy.numpy(), [-20.0, -10.0])
    np.testing.assert_array_equal(batch.forces[: len(structures[1])].numpy(), structures[1].get_forces())
    np.testing.assert_array_equal(batch.forces[len(structures[1]) :].numpy(), structures[0].get_forces())
    assert math.isnan(float(batch.volume[0])) and float(batch.volume[1]) == pytest.approx(structures[0].get_volume())


# ------------------------------------------------- scaling, reference energy


def test_scaling_standard_and_minmax(ds, featurize):
    data = FeaturizedDataset.from_structures([sic(0), sic(1), si_triclinic()], ds, featurize)
    model = NNPModel(ds)
    model.fit_scaling(data, [0, 1], "standard")
    for e in ds.elements:
        b = data.blocks[e]
        G = b.G[b.row_struct < 2]
        center, width, gmin, gmax = model.scaling(e)
        x = (G - center) / width
        np.testing.assert_allclose(x.mean(0).numpy(), 0, atol=1e-10)
        std = G.std(0, unbiased=False)
        np.testing.assert_allclose(width[std > 1e-6].numpy(), std[std > 1e-6].numpy(), rtol=1e-12)
        np.testing.assert_array_equal(gmin.numpy(), G.min(0).values.numpy())
        np.testing.assert_array_equal(gmax.numpy(), G.max(0).values.numpy())
        assert (width > 0).all()
    model.fit_scaling(data, None, "minmax")
    for e in ds.elements:
        center, width, _, _ = model.scaling(e)
        x = (data.blocks[e].G - center) / width
        assert x.min() >= -1 - 1e-12 and x.max() <= 1 + 1e-12


def test_scaling_floor_for_constant_function():
    """A function that is the same for every atom gets a floored width, not 0."""
    ds = DescriptorSet(("Si",), {"Si": (G2("Si", 0.1, 0.0, 4.0), G2("Si", 1.0, 0.0, 4.0))})
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)  # all atoms equivalent
    data = FeaturizedDataset.from_structures([atoms], ds, core_featurizer(ds))
    model = NNPModel(ds)
    model.fit_scaling(data)
    _, width, gmin, gmax = model.scaling("Si")
    assert (width > 0).all()
    np.testing.assert_allclose(width.numpy(), 1e-3 * np.maximum(abs(gmin.numpy()), abs(gmax.numpy())), rtol=1e-6)


def test_reference_energies_fit_composition(ds):
    """Energies exactly linear in composition give back the per-element energies."""
    structures = []
    for n_si, n_c in ((4, 4), (6, 2), (1, 7), (5, 0)):
        a = Atoms("Si" * n_si + "C" * n_c, positions=np.arange(3 * (n_si + n_c)).reshape(-1, 3) * 1.7, pbc=False)
        a.calc = SinglePointCalculator(a, energy=-5.3 * n_si - 7.9 * n_c, forces=np.zeros((len(a), 3)))
        structures.append(a)
    data = FeaturizedDataset.from_structures(structures, ds, core_featurizer(ds))
    model = NNPModel(ds)
    model.fit_reference_energies(data)
    assert float(model.reference_energy("Si")) == pytest.approx(-5.3, abs=1e-12)
    assert float(model.reference_energy("C")) == pytest.approx(-7.9, abs=1e-12)


# ------------------------------------------------------ potential-file I/O


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_potential_data_round_trip_is_exact(ds, featurize, activation):
    model = make_model(ds, [sic(), si_c_cluster()], featurize, hidden=(7, 5), activation=activation, seed=3)
    text = potential_file.dumps(model.to_potential_data(["a comment"]))
    again = NNPModel.from_potential_data(potential_file.loads(text))
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    data = FeaturizedDataset.from_structures([sic(2), si_triclinic(), si_c_cluster()], ds, featurize)
    batch = data.collate([0, 1, 2])
    a, b = model(batch, stress=True), again(batch, stress=True)
    for key in ("energy", "forces", "stress"):
        assert torch.equal(torch.nan_to_num(a[key]), torch.nan_to_num(b[key])), key
    assert potential_file.dumps(again.to_potential_data(["a comment"])) == text


def test_file_written_and_read_back(tmp_path, ds, featurize, model):
    path = potential_file.write(model.to_potential_data(), tmp_path / "m.nnp")
    again = NNPModel.from_potential_data(potential_file.read(path))
    atoms = sic(5)
    assert _energy(again, atoms, featurize) == _energy(model, atoms, featurize)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_cpp_core_evaluates_the_written_model_identically(tmp_path, ds, featurize, activation):
    """The C++ evaluator reading the written file agrees with the torch model
    (energy, forces, virial), so what is trained is what MD runs."""
    model = make_model(ds, [sic(), si_c_cluster()], featurize, hidden=(7, 5), activation=activation, seed=5)
    path = potential_file.write(model.to_potential_data(), tmp_path / "m.nnp")
    pot = _core.Potential(str(path))
    for atoms in (sic(6), si_triclinic(), si_c_cluster()):
        index = {e: n for n, e in enumerate(pot.elements)}
        got = pot.evaluate(
            atoms.positions, np.array([index[s] for s in atoms.get_chemical_symbols()], dtype=np.int32),
            atoms.cell.array, [bool(p) for p in atoms.pbc],
        )
        data = FeaturizedDataset.from_structures([atoms], ds, featurize)
        want = {k: v.detach().numpy() for k, v in model(data.collate([0]), stress=True).items()}
        assert got["energy"] == pytest.approx(want["energy"][0], rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(got["forces"], want["forces"], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(got["virial"], want["virial"][0], rtol=1e-9, atol=1e-10)


def test_activations():
    z = torch.tensor([-800.0, -30.0, -1.0, 0.0, 2.0, 30.0, 800.0], dtype=torch.float64, requires_grad=True)
    y = Softplus()(z)
    want = np.array([np.logaddexp(0, v) for v in z.detach().numpy()])
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-15)
    (g,) = torch.autograd.grad(y.sum(), z)
    np.testing.assert_allclose(g.numpy(), torch.sigmoid(z).detach().numpy(), rtol=1e-15)
    with pytest.raises(ValueError, match="activation"):
        NNPModel(mixed_descriptors(), activation="relu")


def test_pair_contraction_kernel_matches_torch_and_its_adjoint():
    """The fused C++ contraction (training's force path) equals the plain torch
    gather + bmm, and its backward is the exact adjoint (gradcheck)."""
    gen = torch.Generator().manual_seed(3)
    R, M, P = 7, 5, 40
    g = torch.randn(R, M, dtype=torch.float64, generator=gen, requires_grad=True)
    dG_dr = torch.randn(P, M, 3, dtype=torch.float64, generator=gen)
    center = torch.randint(0, R, (P,), generator=gen)
    v = contract_pairs(g, dG_dr, center)
    expected = torch.bmm(g[center].unsqueeze(1), dG_dr).squeeze(1)
    assert torch.allclose(v, expected, rtol=1e-14, atol=1e-14)
    u = torch.randn(P, 3, dtype=torch.float64, generator=gen)
    (grad,) = torch.autograd.grad((v * u).sum(), g)
    (expected_grad,) = torch.autograd.grad((expected * u).sum(), g)
    assert torch.allclose(grad, expected_grad, rtol=1e-14, atol=1e-14)
    assert torch.autograd.gradcheck(lambda x: contract_pairs(x, dG_dr, center), (g,))


def test_pair_contraction_kernel_with_float32_derivatives():
    """Single-precision derivatives (as training stores them) take the float
    overload: float64 sums over the rounded values, exact to float64 rounding."""
    gen = torch.Generator().manual_seed(4)
    R, M, P = 6, 9, 50
    g = torch.randn(R, M, dtype=torch.float64, generator=gen, requires_grad=True)
    dG_dr = torch.randn(P, M, 3, dtype=torch.float64, generator=gen).to(torch.float32)
    center = torch.randint(0, R, (P,), generator=gen)
    v = contract_pairs(g, dG_dr, center)
    assert v.dtype == torch.float64
    expected = torch.bmm(g[center].unsqueeze(1), dG_dr.double()).squeeze(1)
    assert torch.allclose(v, expected, rtol=1e-14, atol=1e-14)
    assert torch.autograd.gradcheck(lambda x: contract_pairs(x, dG_dr, center), (g,))


def test_pair_scatter_kernel_matches_torch_and_its_adjoint():
    """Forces and virial from pair vectors in one C++ pass equal torch's
    index_add and outer products; the backward is the exact adjoint."""
    gen = torch.Generator().manual_seed(5)
    P, N, S = 60, 11, 3
    v = torch.randn(P, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    center = torch.randint(0, N, (P,), generator=gen)
    neighbor = torch.randint(0, N, (P,), generator=gen)
    r = torch.randn(P, 3, dtype=torch.float64, generator=gen)
    struct = torch.sort(torch.randint(0, S, (P,), generator=gen)).values
    F, W = scatter_pairs(v, center, neighbor, r, struct, N, S, with_virial=True)
    F_want = torch.zeros(N, 3, dtype=torch.float64).index_add(0, center, v).index_add(0, neighbor, -v)
    W_want = torch.zeros(S, 3, 3, dtype=torch.float64).index_add(0, struct, -r.unsqueeze(2) * v.unsqueeze(1))
    assert torch.allclose(F, F_want, rtol=1e-14, atol=1e-14)
    assert torch.allclose(W, W_want, rtol=1e-14, atol=1e-14)
    F_only, none = scatter_pairs(v, center, neighbor, r, struct, N, S, with_virial=False)
    assert none is None and torch.equal(F_only, F)
    assert torch.autograd.gradcheck(lambda x: scatter_pairs(x, center, neighbor, r, struct, N, S, True), (v,))
    assert torch.autograd.gradcheck(lambda x: scatter_pairs(x, center, neighbor, r, struct, N, S, False)[0], (v,))
    # Only the virial in the loss: the force part of the adjoint is zero.
    assert torch.autograd.gradcheck(lambda x: scatter_pairs(x, center, neighbor, r, struct, N, S, True)[1], (v,))


def test_pair_scatter_kernel_rejects_bad_indices():
    v, r = np.zeros((1, 3)), np.zeros((1, 3))
    with pytest.raises(ValueError, match="neighbour 5, outside"):
        _core.scatter_pairs(v, np.array([0]), np.array([5]), r, np.array([0]), 2, 1, True)
    with pytest.raises(ValueError, match="structure 1, outside"):
        _core.scatter_pairs(v, np.array([0]), np.array([1]), r, np.array([1]), 2, 1, True)
    with pytest.raises(ValueError, match="centre atom -1, outside"):
        _core.scatter_pairs_adjoint(np.zeros((2, 3)), None, np.array([-1]), np.array([0]), r, np.array([0]))


def test_float32_derivatives_change_forces_and_stress_only_by_rounding(model, ds):
    """Training stores dG_dr in float32: the forces and stress it trains on
    are those of float64 to single-precision rounding, the energies exact."""
    structures = [sic(0), si_triclinic(), sic(4)]
    double = FeaturizedDataset.from_structures(structures, ds)
    single = FeaturizedDataset.from_structures(structures, ds, derivative_dtype=np.float32)
    assert all(b.dG_dr.dtype == torch.float32 for b in single.blocks.values())
    assert single.nbytes() < 0.7 * double.nbytes()
    want = model(double.collate([0, 1, 2]), stress=True)
    got = model(single.collate([0, 1, 2]), stress=True)
    assert torch.equal(got["energy"], want["energy"])
    for key in ("forces", "stress"):
        scale = float(want[key].abs().max())
        err = float((got[key] - want[key]).abs().max())
        assert 0 < err < 1e-6 * scale, (key, err, scale)


def test_pair_contraction_kernel_rejects_bad_centres():
    g = np.zeros((3, 2))
    with pytest.raises(ValueError, match="centre row 3, outside the 3 descriptor rows"):
        _core.contract_pairs(g, np.zeros((1, 2, 3)), np.array([3]))
    with pytest.raises(ValueError, match="matching"):
        _core.contract_pairs(g, np.zeros((1, 3, 3)), np.array([0]))
    with pytest.raises(ValueError, match="outside"):
        _core.contract_pairs_adjoint(np.zeros((1, 3)), np.zeros((1, 2, 3)), np.array([-1]), 3)
