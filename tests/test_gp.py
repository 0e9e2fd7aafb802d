"""The sparse Gaussian-process element model (issue 24; docs/gp.md).

The `gp` section of the potential file (format version 6) round-trips and
refuses malformed input with 'FILE:LINE: ...'; the C++ core's GP energy
equals an independent torch reference (the tests-only torch descriptors
of reference_descriptors and the kernels written out below) to 1e-12, its
forces are the finite differences of its energy, and NNPCalculator, the
torch reference and LAMMPS agree on energy, forces and virial to 1e-10, for
GP-only elements and elements with a network and a GP. The closed-form fit
(nnp.train.gp_fit) recovers a GP that generated its labels, and learns the
Si data.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import reference_descriptors as reference
import torch
from conftest import (assert_refused_at_line, mixed_sic, random_potential, rattled_si, si_cluster, test_descriptor,
                      triclinic_si)
from test_agreement import RTOL, assert_agree, core_results, lammps_cell_structure, lammps_results

from nnp import NNPCalculator, _core
from nnp.io import potential_file as pf
from nnp.model import gp as gpmod

DTYPE = torch.float64


# ------------------------------------------------------------------ fixtures


def scaled_descriptors(pot: pf.PotentialData, e: str, structures) -> np.ndarray:
    """x = (G − center)/width of element e's atoms in `structures` (core descriptors)."""
    s = pot.models[e].scaling
    G = np.concatenate([pot.descriptors.featurize(a, derivatives=False)[e]["G"] for a in structures])
    return (G - s.center) / s.width


def random_gp(pot: pf.PotentialData, e: str, structures, kernel: str, M: int, seed: int) -> pf.GaussianProcess:
    """A GP of M sparse points near element e's environments in `structures`,
    with random weights giving atomic energies of ~0.1 eV."""
    rng = np.random.default_rng(seed)
    x = scaled_descriptors(pot, e, structures)
    z = x[rng.choice(len(x), M, replace=False)] + 0.2 * rng.normal(size=(M, x.shape[1]))
    return pf.GaussianProcess(kernel, 0.6, z, rng.normal(0.0, 0.3, M), lengthscale=2.5 + seed % 3, zeta=2 + seed % 3)


def with_gps(pot: pf.PotentialData, structures, kernel: str, network: dict[str, bool], seed: int = 0):
    """`pot` with a GP on every element, keeping the network where network[e]."""
    models = {}
    for k, (e, m) in enumerate(pot.models.items()):
        layers = m.layers if network[e] else []
        models[e] = pf.ElementModel(m.reference_energy, m.scaling, layers, m.quadratic,
                                    random_gp(pot, e, structures, kernel, 9 + 4 * k, seed + k))
    return pf.PotentialData(pot.descriptors, models, ["GP test potential"], pot.repulsion)


SI_STRUCTURES = [rattled_si((2, 2, 2), 0.1, 0), triclinic_si(1), si_cluster(2)]


@pytest.fixture(scope="module", params=["se", "dot"])
def si_gp(request, tmp_path_factory):
    """(path, data) of a GP-only Si potential (one kernel per param)."""
    base = random_potential(test_descriptor(), SI_STRUCTURES, seed=7)
    pot = with_gps(base, SI_STRUCTURES, request.param, {"Si": False}, seed=1)
    path = tmp_path_factory.mktemp("gp") / f"Si_gp_{request.param}.nnp"
    pf.write(pot, path)
    return path, pot


@pytest.fixture(scope="module", params=["se", "dot"])
def sic_gp(request, tmp_path_factory):
    """A two-element potential: Si a GP and a quadratic term (no network), C a network, a quadratic term and a GP."""
    d = test_descriptor(elements=("Si", "C"))
    structures = [mixed_sic(s) for s in range(3)]
    base = random_potential(d, structures, seed=3, quadratic=True)
    pot = with_gps(base, structures, request.param, {"Si": False, "C": True}, seed=4)
    path = tmp_path_factory.mktemp("gp") / f"SiC_gp_{request.param}.nnp"
    pf.write(pot, path)
    return path, pot


# --------------------------------------------------------- torch reference


def torch_gp_energy(gp: pf.GaussianProcess, x: torch.Tensor) -> torch.Tensor:
    """E_GP of each row of x, written from the formulas of docs/gp.md."""
    z = torch.from_numpy(gp.sparse_points)
    alpha = torch.from_numpy(gp.weights)
    if gp.kernel == "se":
        d2 = ((x[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        k = gp.delta**2 * torch.exp(-d2 / (2 * gp.lengthscale**2))
    else:
        def unit(a):
            a = torch.cat([a, torch.ones(len(a), 1, dtype=DTYPE)], dim=1)
            return a / torch.linalg.norm(a, dim=1, keepdim=True)
        k = gp.delta**2 * (unit(x) @ unit(z).T) ** gp.zeta
    return k @ alpha


def torch_network(model: pf.ElementModel, x: torch.Tensor) -> torch.Tensor:
    acts = {"tanh": torch.tanh, "linear": lambda a: a}
    for layer in model.layers:
        x = acts[layer.activation](x @ torch.from_numpy(layer.weights).T + torch.from_numpy(layer.biases))
    return x[:, 0]


def torch_reference(pot: pf.PotentialData, atoms) -> dict:
    """Atomic energies, energy, forces and stress of `pot` (no repulsion)
    from the torch descriptors and autograd."""
    assert not pot.repulsion
    from ase.neighborlist import neighbor_list

    ds = pot.descriptors
    elem = ds.element_indices(atoms.get_chemical_symbols()).astype(np.int64)
    i, j, D = neighbor_list("ijD", atoms, ds.cutoff)
    vec = torch.tensor(D, dtype=DTYPE, requires_grad=True)
    geo = reference.Geometry(i, elem[j], vec, len(atoms))
    atom_energy = torch.zeros(len(atoms), dtype=DTYPE)
    for n, e in enumerate(ds.elements):
        rows = torch.as_tensor(np.flatnonzero(elem == n))
        if len(rows) == 0:
            continue
        m = pot.models[e]
        G = torch.stack(reference.evaluate_columns(ds, geo, e), dim=1)[rows]
        x = (G - torch.from_numpy(m.scaling.center)) / torch.from_numpy(m.scaling.width)
        E = m.reference_energy + torch_gp_energy(m.gp, x)
        if m.layers:
            E = E + torch_network(m, x)
        if m.quadratic is not None:
            E = E + x @ torch.from_numpy(m.quadratic.linear) + ((x @ torch.from_numpy(m.quadratic.matrix)) * x).sum(1)
        atom_energy = atom_energy.index_add(0, rows, E)
    (g,) = torch.autograd.grad(atom_energy.sum(), vec)  # ∂E/∂r_ij, r_ij = r_j − r_i
    g = g.numpy()
    forces = np.zeros((len(atoms), 3))
    np.add.at(forces, i, g)
    np.add.at(forces, j, -g)
    out = {"energies": atom_energy.detach().numpy(), "energy": float(atom_energy.detach().sum()), "forces": forces}
    if atoms.pbc.all():
        s = D.T @ g / atoms.get_volume()  # ASE: σ = (1/V) ∂E/∂ε
        out["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    return out


# ------------------------------------------------------------------ the file


def test_round_trip_is_a_fixed_point_and_version_6(si_gp, sic_gp):
    for path, pot in (si_gp, sic_gp):
        text = path.read_text()
        assert text.splitlines()[0] == "nnp-potential 6"
        back = pf.read(path)
        assert pf.dumps(back) == text
        for e, m in pot.models.items():
            g, h = m.gp, back.models[e].gp
            assert (g.kernel, g.delta) == (h.kernel, h.delta)
            # The file carries the hyperparameter its kernel uses.
            assert (g.zeta == h.zeta) if g.kernel == "dot" else (g.lengthscale == h.lengthscale)
            np.testing.assert_array_equal(g.weights, h.weights)
            np.testing.assert_array_equal(g.sparse_points, h.sparse_points)
            assert len(back.models[e].layers) == len(m.layers)
        assert pot.format_version == 6


def test_version_6_only_with_a_gp(si_gp, si_potential, si_quadratic_potential):
    _, pot = si_gp
    without = pf.PotentialData(pot.descriptors, {"Si": pf.ElementModel(
        pot.models["Si"].reference_energy, pot.models["Si"].scaling,
        random_potential(test_descriptor(), SI_STRUCTURES).models["Si"].layers)}, [])
    assert pf.dumps(without).splitlines()[0] == "nnp-potential 1"
    # Files of earlier versions still read, and are written as they were.
    for old in (si_potential, si_quadratic_potential):
        text = old.read_text()
        assert int(text.splitlines()[0].split()[1]) < 6
        assert pf.dumps(pf.read(old)) == text
        _core.Potential(str(old))


def test_an_element_needs_a_network_or_a_gp(si_gp):
    _, pot = si_gp
    m = pot.models["Si"]
    bare = pf.PotentialData(pot.descriptors, {"Si": pf.ElementModel(m.reference_energy, m.scaling, [])}, [])
    with pytest.raises(ValueError, match="needs a network or a GP"):
        pf.dumps(bare)


def _gp_mutations(text: str):
    """(name, broken text, the line the error must name, words of the message)."""
    lines = text.splitlines()
    gp = next(n for n, line in enumerate(lines, 1) if line.startswith("gp "))
    kernel = lines[gp - 1].split()[2]
    first_row = gp + 2

    def edit(n, new):
        out = lines.copy()
        out[n - 1] = new(out[n - 1])
        return "\n".join(out) + "\n"

    yield "kernel", edit(gp, lambda s: s.replace(f" {kernel} ", " rbf ")), gp, "unknown GP kernel"
    yield "count", edit(gp, lambda s: s.rsplit(" ", 1)[0] + " 2.5"), gp, "integer"
    yield "zero-count", edit(gp, lambda s: s.rsplit(" ", 1)[0] + " 0"), gp, "sparse points"
    yield "no-kernel", edit(gp, lambda s: " ".join(s.split()[:2] + s.split()[3:])), gp, "expected 'gp element"
    yield "hyper-word", edit(gp + 1, lambda s: s.replace("delta", "sigma")), gp + 1, "hyperparameters delta"
    yield "hyper-count", edit(gp + 1, lambda s: s + " 1"), gp + 1, "takes 4 values"
    yield "delta", edit(gp + 1, lambda s: s.replace(s.split()[2], "-0.5", 1)), gp + 1, "delta must be"
    second = "zeta" if kernel == "dot" else "lengthscale"
    bad = "0" if kernel == "dot" else "nan"
    yield "second", edit(gp + 1, lambda s: " ".join(s.split()[:4] + [bad])), gp + 1, second
    yield "short-row", edit(first_row, lambda s: s.rsplit(" ", 1)[0]), first_row, "weight and its"
    yield "word-row", edit(first_row, lambda s: "abc " + s.split(" ", 1)[1]), first_row, "number"
    yield "inf-weight", edit(first_row, lambda s: "inf " + s.split(" ", 1)[1]), first_row, "finite"
    yield "version-5", edit(1, lambda s: "nnp-potential 5"), gp, "version 6"
    n_rows = int(lines[gp - 1].split()[3])
    truncated = "\n".join(lines[: gp + 1 + n_rows // 2]) + "\n"
    yield "truncated", truncated, gp + 1 + n_rows // 2, "ends early"
    twice = lines[: gp + 1 + n_rows] + lines[gp - 1 : gp + 1 + n_rows] + lines[gp + 1 + n_rows:]
    yield "second-gp", "\n".join(twice) + "\n", gp + 2 + n_rows, "second 'gp'"
    desc = next(n for n, line in enumerate(lines, 1) if line.startswith("descriptor "))
    early = lines[: desc - 1] + lines[gp - 1 : gp + 1 + n_rows] + lines[desc - 1 : gp - 1] + lines[gp + 1 + n_rows:]
    yield "before-descriptor", "\n".join(early) + "\n", desc, "must follow 'descriptor"


def _gp_file_text(si_gp) -> str:
    return si_gp[0].read_text()


@pytest.mark.parametrize("case", range(15))
def test_malformed_gp_sections_name_file_and_line(tmp_path, si_gp, case):
    name, broken, line, words = list(_gp_mutations(_gp_file_text(si_gp)))[case]
    path = tmp_path / f"{name}.nnp"
    path.write_text(broken)
    assert_refused_at_line(path, line, words)


def test_version_6_without_a_gp_is_refused(tmp_path, si_potential):
    text = si_potential.read_text().splitlines()
    text[0] = "nnp-potential 6"
    path = tmp_path / "v6.nnp"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:1: .*without 'gp' sections"):
        pf.read(path)


def test_torch_model_refuses_a_gp(si_gp):
    from nnp.model.network import NNPModel

    with pytest.raises(ValueError, match="GP"):
        NNPModel.from_potential_data(si_gp[1])


# --------------------------------------------------------------- evaluation


@pytest.mark.parametrize("atoms", [rattled_si((2, 2, 2), 0.12, 5), triclinic_si(3), si_cluster(4)],
                         ids=["rattled", "triclinic", "cluster"])
def test_core_gp_energy_equals_the_torch_reference(si_gp, atoms):
    path, pot = si_gp
    atoms = atoms.copy()
    atoms.calc = NNPCalculator(path)
    ref = torch_reference(pot, atoms)
    e = atoms.get_potential_energies()
    gp_part = ref["energies"] - pot.models["Si"].reference_energy
    assert np.abs(gp_part).max() > 0.05  # the GP is not negligible
    np.testing.assert_allclose(e, ref["energies"], rtol=0, atol=1e-12 * np.abs(e).max())
    # nnp.model.gp (the fit's kernels) on the core's descriptors: the same energies.
    x = scaled_descriptors(pot, "Si", [atoms])
    np.testing.assert_allclose(gpmod.gp_energies(pot.models["Si"].gp, x), gp_part, rtol=0, atol=1e-12)
    f = atoms.get_forces()
    np.testing.assert_allclose(f, ref["forces"], rtol=0, atol=RTOL * np.abs(f).max())
    if atoms.pbc.all():
        s = atoms.get_stress()
        np.testing.assert_allclose(s, ref["stress"], rtol=0, atol=RTOL * np.abs(s).max())


def test_forces_are_finite_differences(sic_gp):
    path, _ = sic_gp
    rng = np.random.default_rng(3)
    atoms = mixed_sic(5)
    atoms.calc = NNPCalculator(path)
    f = atoms.get_forces()
    h = 1e-5
    for a in rng.choice(len(atoms), 4, replace=False):
        for c in range(3):
            e = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[a, c] += sign * h
                moved.calc = NNPCalculator(path)
                e.append(moved.get_potential_energy())
            assert abs(-(e[0] - e[1]) / (2 * h) - f[a, c]) < 1e-7 * max(1.0, np.abs(f).max())


def test_gp_kernel_gradients_are_finite_differences():
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=(5, 6)), rng.normal(size=(4, 6))
    for spec in (gpmod.KernelSpec("se", 0.7, 1.3), gpmod.KernelSpec("dot", 0.7, zeta=3)):
        grad = gpmod.kernel_rows(spec, x, z).gradient()  # (R, M, D)
        h = 1e-6
        for d in range(6):
            step = np.zeros(6)
            step[d] = h
            fd = (gpmod.kernel_matrix(spec, x + step, z) - gpmod.kernel_matrix(spec, x - step, z)) / (2 * h)
            np.testing.assert_allclose(grad[:, :, d], fd, atol=1e-8)


def test_calculator_torch_and_lammps_agree_gp_only(si_gp):
    path, pot = si_gp
    for seed in (0, 1):
        atoms = lammps_cell_structure(seed)
        core = core_results(path, atoms)
        assert_agree({k: v for k, v in torch_reference(pot, atoms).items() if k != "energies"}, core, "torch vs core")
        assert_agree(lammps_results(path, atoms, ["Si"]), core, "LAMMPS vs core")
        assert_agree(lammps_results(path, atoms, ["Si"], newton="off"), core, "LAMMPS newton off vs core")


def test_calculator_torch_and_lammps_agree_network_plus_gp(sic_gp):
    path, pot = sic_gp
    rng = np.random.default_rng(5)
    atoms = lammps_cell_structure(2, symbols=lambda n: rng.choice(["Si", "C"], n).tolist())
    core = core_results(path, atoms)
    assert_agree({k: v for k, v in torch_reference(pot, atoms).items() if k != "energies"}, core, "torch vs core")
    assert_agree(lammps_results(path, atoms, ["C", "Si"]), core, "LAMMPS vs core")


def test_network_plus_gp_is_the_sum(sic_gp, tmp_path):
    """E of an element with network and GP = E with the network alone + the GP."""
    path, pot = sic_gp
    m = pot.models["C"]
    net_only = pf.PotentialData(pot.descriptors, {**pot.models, "C": pf.ElementModel(
        m.reference_energy, m.scaling, m.layers, m.quadratic)}, [])
    atoms = mixed_sic(6)
    atoms.calc = NNPCalculator(path)
    both = atoms.get_potential_energies()
    atoms.calc = NNPCalculator(pf.write(net_only, tmp_path / "net.nnp"))
    net = atoms.get_potential_energies()
    carbon = np.array(atoms.get_chemical_symbols()) == "C"
    gp_part = gpmod.gp_energies(m.gp, scaled_descriptors(pot, "C", [atoms]))
    np.testing.assert_allclose(both[carbon] - net[carbon], gp_part, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- fit


def _labelled(structures, potential) -> list:
    """Copies of `structures` labelled (energy, forces, stress) by `potential` through the core."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for a in structures:
        a = a.copy()
        a.calc = NNPCalculator(potential)
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        out.append(a)
    return out


@pytest.mark.parametrize("kernel, selection", [("se", "farthest"), ("dot", "cur"), ("se", "cur")])
def test_fit_recovers_the_gp_that_made_its_labels(tmp_path, kernel, selection):
    """Labels from a GP whose sparse points are those the fit will choose:
    with small noise levels the fit gives back its weights, and so its
    energies and forces on structures it has not seen."""
    from nnp.data import FeaturizedDataset
    from nnp.model.network import NNPModel
    from nnp.train import gp_fit

    ds = test_descriptor()
    structures = [rattled_si((1, 1, 1), 0.15, s, a=5.25 + 0.04 * s) for s in range(10)]
    model = NNPModel(ds, [3])
    model.fit_scaling(FeaturizedDataset.from_structures(structures, ds))
    model.reference_energy("Si").fill_(-5.0)
    idx = np.arange(len(structures))
    M = 10
    spec = gpmod.KernelSpec(kernel, 0.5, 2.0, 2)
    settings = gp_fit.GPSettings(spec, M, sigma_energy=1e-7, sigma_force=1e-7, sigma_virial=1e-7, jitter=1e-10,
                                 selection=selection)
    sparse = gp_fit.select_sparse(FeaturizedDataset.from_structures(structures, ds), model, idx, settings)["Si"]
    truth = model.to_potential_data()
    alpha = np.random.default_rng(0).normal(0.0, 0.5, M)
    truth.models["Si"].layers = []
    truth.models["Si"].gp = pf.GaussianProcess(kernel, spec.delta, sparse, alpha, spec.lengthscale, spec.zeta)
    path = pf.write(truth, tmp_path / "truth.nnp")

    data = FeaturizedDataset.from_structures(_labelled(structures, path), ds)  # float64 derivatives
    fitted = gp_fit.fit(data, idx, gp_fit.prior_mean(model), settings)
    gp = fitted.processes["Si"]
    np.testing.assert_array_equal(gp.sparse_points, sparse)
    np.testing.assert_allclose(gp.weights, alpha, rtol=0, atol=1e-6 * np.abs(alpha).max())
    assert fitted.n_rows == len(structures) * (1 + 3 * 8 + 6)

    fitted_pot = model.to_potential_data()
    fitted_pot.models["Si"].layers, fitted_pot.models["Si"].gp = [], gp
    fitted_path = pf.write(fitted_pot, tmp_path / "fitted.nnp")
    for atoms in (rattled_si((1, 1, 1), 0.12, 40, a=5.33), triclinic_si(9)):
        ref, fit_ = atoms.copy(), atoms.copy()
        ref.calc, fit_.calc = NNPCalculator(path), NNPCalculator(fitted_path)
        assert abs(ref.get_potential_energy() - fit_.get_potential_energy()) < 1e-6 * len(atoms)
        np.testing.assert_allclose(fit_.get_forces(), ref.get_forces(), atol=1e-6)

    # Labels of one kind only still recover it: forces alone (virials and energies off).
    data_f = FeaturizedDataset.from_structures(_labelled(structures, path), ds)
    data_f.energy[:] = float("nan")
    only_forces = gp_fit.GPSettings(spec, M, 1e-7, 1e-7, 0.0, 1e-10, selection)
    weights = gp_fit.fit(data_f, idx, gp_fit.prior_mean(model), only_forces).processes["Si"].weights
    np.testing.assert_allclose(weights, alpha, rtol=0, atol=1e-5 * np.abs(alpha).max())


def test_fit_learns_the_si_data():
    """On a slice of the bundled Si data, the GP's validation errors (through
    the core, on structures it has not seen) are far below those of the
    model it starts from (reference energies and the core alone)."""
    from conftest import SI_DATA

    from nnp import descriptors as descriptors_mod
    from nnp.data import read_structures
    from nnp.train import gp_run
    from nnp.train.config import TrainConfig
    from nnp.train.training_set import featurize

    structures = read_structures(SI_DATA)[::6]  # 36 structures of every config_type
    config = TrainConfig(model="gp", gp_sparse=60, gp_lengthscale=8.0, gp_mean="none", gp_sigma_energy=0.002,
                         validation_fraction=0.25)
    descriptors = descriptors_mod.resolve("C64", ("Si",), structures)
    data = featurize(structures, descriptors, config)
    result = gp_run.fit_potential(data, descriptors, config)
    fitted = gp_run.validation_metrics(result, structures)
    zero = result.potential.models["Si"].gp
    result.potential.models["Si"].gp = pf.GaussianProcess(zero.kernel, zero.delta, zero.sparse_points,
                                                          0 * zero.weights, zero.lengthscale, zero.zeta)
    before = gp_run.validation_metrics(result, structures)  # the prior mean alone
    assert fitted["force_rmse_eV_A"] < 0.3 * before["force_rmse_eV_A"]
    assert fitted["energy_rmse_meV_atom"] < 0.15 * before["energy_rmse_meV_atom"]
    assert fitted["force_rmse_eV_A"] < 0.3 and fitted["energy_rmse_meV_atom"] < 40


def test_sparse_point_selection():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(6, 4))
    x = np.concatenate([base, base[:3], base[:2]])  # duplicates add nothing
    for spec in (gpmod.KernelSpec("se", 0.8, 1.5), gpmod.KernelSpec("dot", 0.8, zeta=2)):
        pick = gpmod.cur_points(spec, x, 6, block=4)
        assert sorted({tuple(r) for r in x[pick]}) == sorted(tuple(r) for r in base)
        with pytest.raises(ValueError, match="rank 6"):
            gpmod.cur_points(spec, x, 7)
    pick = gpmod.farthest_points(x, 6)
    assert len({tuple(r) for r in x[pick]}) == 6
    with pytest.raises(ValueError, match="only 6 distinct"):
        gpmod.farthest_points(x, 7)


# ---------------------------------------------------------- nnp train --model gp


@pytest.fixture(scope="module")
def small_si(tmp_path_factory):
    from ase.io import read, write
    from conftest import SI_DATA

    path = tmp_path_factory.mktemp("data") / "small.xyz"
    write(path, read(SI_DATA, ":")[::12])
    return path


def test_train_model_gp_writes_a_potential_lammps_agrees_with(small_si, tmp_path, capsys):
    from nnp.train.cli import main

    config = tmp_path / "gp.yaml"
    config.write_text("descriptor: S16\ngp_sparse: 30\ngp_selection: cur\ngp_mean: quadratic\n")
    out = tmp_path / "Si_gp.nnp"
    assert main(["--data", str(small_si), "-o", str(out), "--config", str(config), "--model", "gp",
                 "--report", str(tmp_path / "report")]) == 0
    text = capsys.readouterr().out
    assert "validation RMSE" in text and "holdout fit" in text
    assert "30 sparse points per element (cur), prior mean quadratic" in text
    pot = pf.read(out)
    assert out.read_text().splitlines()[0] == "nnp-potential 7"  # with the variance factor (test_gp_variance.py)
    m = pot.models["Si"]
    assert m.layers == [] and m.gp.weights.shape == (30,) and pot.repulsion and m.quadratic is not None
    assert m.gp.variance_factor.shape == (30 * 31 // 2,)
    assert any('"model": "gp"' in c for c in pot.comments)
    assert (tmp_path / "report" / "metrics.json").exists()
    atoms = lammps_cell_structure(0)
    core = core_results(out, atoms)
    assert_agree(lammps_results(out, atoms, ["Si"]), core, "LAMMPS vs core")


def test_train_model_gp_refuses_a_fit_over_the_memory_budget(small_si, tmp_path, capsys):
    from nnp.train.cli import main

    from nnp import descriptors as descriptors_mod
    from nnp.data import read_structures
    from nnp.train import gp_run
    from nnp.train.config import TrainConfig

    # The budget: what the estimate asks for 1000 sparse points.
    structures = read_structures(small_si)
    descriptors = descriptors_mod.resolve("S16", ("Si",), structures)
    need, _ = gp_run.check_memory(structures, descriptors, TrainConfig(gp_sparse=1000, memory_budget=1000.0))
    out = tmp_path / "Si_gp.nnp"
    config = tmp_path / "gp.yaml"
    config.write_text(f"model: gp\ndescriptor: S16\ngp_sparse: 4000\nmemory_budget: {need / 2**30!r}\n")
    assert main(["--data", str(small_si), "-o", str(out), "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: the GP fit needs about")
    fits = int(re.search(r"gp_sparse (\d+) would fit", err).group(1))
    assert fits in (999, 1000)  # 1000 unless the budget rounds below its estimate
    assert not out.exists()
    assert main(["--data", str(small_si), "-o", str(out), "--model", "gp", "--ensemble", "2"]) == 1
    assert "--ensemble" in capsys.readouterr().err


# ------------------------------------------------------------ mean with a network


def test_mean_of_a_gp_and_a_network_is_one_element_with_both(si_gp, tmp_path):
    """nnp.committee's mean of a GP-only potential, a network (with a
    quadratic term) and another GP: energies, forces and stress are the mean
    of the three, from one file whose element has a network and one GP."""
    from nnp import committee

    path, pot = si_gp
    m = pot.models["Si"]
    net = random_potential(test_descriptor(), SI_STRUCTURES, seed=11, quadratic=True).models["Si"]
    network = pf.PotentialData(pot.descriptors, {"Si": pf.ElementModel(-5.2, m.scaling, net.layers, net.quadratic)}, [])
    other = with_gps(pot, SI_STRUCTURES, m.gp.kernel, {"Si": False}, seed=1)
    other.models["Si"].gp.weights = -0.5 * other.models["Si"].gp.weights
    other.models["Si"].gp.lengthscale, other.models["Si"].gp.zeta = m.gp.lengthscale, m.gp.zeta
    members = [pot, network, other]
    paths = [pf.write(p, tmp_path / f"member{k}.nnp") for k, p in enumerate(members)]
    mean_path = committee.write_mean(paths, tmp_path / "mean.nnp")
    mean = pf.read(mean_path)
    assert mean.models["Si"].layers and len(mean.models["Si"].gp.weights) == 2 * len(m.gp.weights)
    atoms = lammps_cell_structure(1)
    results = [core_results(p, atoms) for p in paths]
    expected = {k: np.mean([r[k] for r in results], axis=0) for k in ("energy", "forces", "stress")}
    assert_agree(core_results(mean_path, atoms), expected, "mean file vs mean of members")
    assert_agree(lammps_results(mean_path, atoms, ["Si"]), expected, "LAMMPS mean vs mean of members")

    shifted = pf.PotentialData(pot.descriptors, {"Si": pf.ElementModel(
        m.reference_energy, pf.Scaling(m.scaling.center + 0.1, m.scaling.width, m.scaling.min, m.scaling.max),
        [], None, m.gp)}, [])
    with pytest.raises(ValueError, match="same scaling"):
        committee.mean_potential([network, shifted])


@pytest.mark.mpi
def test_mpi_two_ranks_match_serial_gp(tmp_path, si_gp):
    """pair_style nnp with a GP element on two MPI ranks = one rank (as tests/test_lammps_plugin.py for networks)."""
    import subprocess
    import sys
    from pathlib import Path

    import test_lammps_plugin as tl

    mpirun = tl.VENV_BIN / "mpirun"
    if not mpirun.exists():
        pytest.skip(f"no mpirun in {tl.VENV_BIN}")
    pos, length = tl.diamond(2, 0.1, seed=4)
    data = tl.write_data(tmp_path / "si64.data", pos, tl.ortho_box(length))
    text = tl.lammps_input(data, potential=si_gp[0])
    (tmp_path / "in.lmp").write_text(text)
    script = tmp_path / "run_mpi.py"
    script.write_text(tl.MPI_SCRIPT.format(tests_dir=str(Path(tl.__file__).resolve().parent)))
    out = subprocess.run([str(mpirun), "-np", "2", sys.executable, str(script), str(tmp_path / "in.lmp"),
                          str(tmp_path / "out.npz")], env=tl._subprocess_env(), capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    parallel = dict(np.load(tmp_path / "out.npz"))
    serial = tl.run(text)
    assert int(parallel["nprocs"]) == 2 and serial["nprocs"] == 1
    assert float(parallel["energy"]) == pytest.approx(serial["energy"], abs=1e-10)
    np.testing.assert_allclose(parallel["forces"], serial["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(parallel["pe_atom"], serial["pe_atom"], rtol=0, atol=1e-10)
