"""The quadratic term Q(x) = b·x + xᵀAx (nnp.model.quadratic): its closed-form fit,
its blend with a network, and its evaluation in the torch model and the C++
core (the LAMMPS layer is in test_agreement.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from nnp import _core
from nnp.io import potential_file
from nnp.model import quadratic
from nnp.data import FeaturizedDataset, read_structures
from nnp.descriptors import G2, DescriptorSet
from nnp.model.network import NNPModel
from nnp.io.potential_file import QuadraticTerm, Repulsion
from nnp.train import TrainConfig, build_model, evaluate, featurize as featurize_training_set
from nnp.train.loss import Objective
from nnp.train.training_set import split_structures
from conftest import assert_refused_at_line, shared_data
from test_model import ds, featurize, make_model, si_c_cluster, si_triclinic, sic  # noqa: F401 (fixtures)

torch.set_num_threads(1)

STRUCTURES = [sic(0), sic(1), sic(2), sic(3), si_triclinic(1), si_triclinic(2), si_c_cluster()]


def random_quadratic(M: int, rng: np.random.Generator, scale: float = 0.05) -> QuadraticTerm:
    A = rng.normal(0.0, scale, (M, M))
    return QuadraticTerm(rng.normal(0.0, scale, M), 0.5 * (A + A.T))


def with_quadratic(model: NNPModel, seed: int, zero_network: bool = False) -> NNPModel:
    """`model` with a random quadratic term for every element (and, with
    `zero_network`, a network that gives 0: Q and e0 only)."""
    rng = np.random.default_rng(seed)
    pot = model.to_potential_data()
    for e, m in pot.models.items():
        m.quadratic = random_quadratic(pot.descriptors.size(e), rng)
        if zero_network:
            m.layers[-1].weights = np.zeros_like(m.layers[-1].weights)
            m.layers[-1].biases = np.zeros_like(m.layers[-1].biases)
    return NNPModel.from_potential_data(pot)


def labelled(structures, model: NNPModel, featurize) -> list:
    """Copies of `structures` labelled with `model`'s energy, forces and stress."""
    out = []
    for atoms in structures:
        (r,) = model.predict([atoms], featurize, stress=bool(atoms.pbc.all()))
        a = atoms.copy()
        kw = {"stress": r["stress"][[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]} if atoms.pbc.all() else {}
        a.calc = SinglePointCalculator(a, energy=r["energy"], forces=r["forces"], **kw)
        out.append(a)
    return out


def scalings(model: NNPModel):
    return ({e: model.scaling(e)[0] for e in model.elements}, {e: model.scaling(e)[1] for e in model.elements})


@pytest.mark.parametrize("weights", [(1.0, 0.06, 0.01), (1.0, 0.06, 0.0), (0.0, 1.0, 0.0)],
                         ids=["energy+forces+virial", "no virial", "forces only"])
def test_fit_recovers_a_quadratic_model_exactly(ds, featurize, weights):
    """Labels made by a model that is e0 + Q alone are fitted exactly: the
    design matrix (energies, forces, virials) is that model's derivative."""
    truth = with_quadratic(make_model(ds, STRUCTURES, featurize, seed=1), seed=2, zero_network=True)
    data = FeaturizedDataset.from_structures(labelled(STRUCTURES, truth, featurize), ds, featurize)
    centers, widths = scalings(truth)
    fit = quadratic.fit(data, range(len(data)), centers, widths, *weights, ridge=0.0)
    for e in truth.elements:
        b, A = (t.numpy() for t in truth.quadratic_term(e))
        tol = 1e-7 * np.abs(A).max()
        if weights[0] > 0:  # forces alone do not fix the constants
            assert fit.constants[e] == pytest.approx(float(truth.reference_energy(e)), abs=1e-8)
        np.testing.assert_allclose(fit.terms[e].linear, b, atol=tol)
        np.testing.assert_allclose(fit.terms[e].matrix, A, atol=tol)
        assert np.array_equal(fit.terms[e].matrix, fit.terms[e].matrix.T)


def test_fit_subtracts_the_repulsive_core(ds, featurize):
    """With a core, the quadratic model fits the labels minus the core: a
    model of core + e0 + Q is recovered exactly."""
    base = make_model(ds, STRUCTURES, featurize, seed=1)
    pot = with_quadratic(base, seed=3, zero_network=True).to_potential_data()
    pot.repulsion = [Repulsion("Si", "Si", 1.6, 2.4), Repulsion("C", "Si", 1.2, 2.0)]
    truth = NNPModel.from_potential_data(pot)
    squeezed = sic(4)
    squeezed.positions[1] = squeezed.positions[0] + [1.5, 0.3, 0.2]  # inside the Si-C core
    structures = STRUCTURES + [squeezed]
    data = FeaturizedDataset.from_structures(labelled(structures, truth, featurize), ds, featurize)
    assert float(data.collate(range(len(data))).shortest_pair) < 2.0
    centers, widths = scalings(truth)
    fit = quadratic.fit(data, range(len(data)), centers, widths, 1.0, 0.06, 0.01, ridge=0.0,
                        baseline=quadratic.core_baseline(truth))
    for e in truth.elements:
        b, A = (t.numpy() for t in truth.quadratic_term(e))
        np.testing.assert_allclose(fit.terms[e].matrix, A, atol=1e-7 * np.abs(A).max())
        np.testing.assert_allclose(fit.terms[e].linear, b, atol=1e-7 * np.abs(A).max())


def test_fit_minimises_the_training_loss(ds, featurize):
    """On labels no quadratic model fits (a network's), the fitted (e0, b, A)
    is a stationary point of nnp.train's loss: its gradient vanishes there,
    while it does not a little way off. This ties the fit's weights and
    normalisations to the loss that training minimises."""
    truth = make_model(ds, STRUCTURES, featurize, seed=4)
    data = FeaturizedDataset.from_structures(labelled(STRUCTURES, truth, featurize), ds, featurize)
    config = TrainConfig(energy_weight=1.0, force_weight=0.06, stress_weight=0.01)
    train_idx = np.arange(len(data))
    centers, widths = scalings(truth)
    fit = quadratic.fit(data, train_idx, centers, widths, config.energy_weight, config.force_weight,
                        config.stress_weight, ridge=0.0)
    zero = NNPModel(ds, [2], "linear")
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
        for e in ds.elements:
            for dst, src in zip(zero.scaling(e), truth.scaling(e)):
                dst.copy_(src)
    model = quadratic.blend(zero, fit, 1.0)
    objective = Objective(data, train_idx, config, torch.device("cpu"))

    def gradient(shift: float) -> float:
        leaves = []
        for e in ds.elements:
            b, A = model.quadratic_term(e)
            with torch.no_grad():
                b.add_(shift)
            leaves += [b.requires_grad_(True), A.requires_grad_(True), model.reference_energy(e).requires_grad_(True)]
        for t in leaves:
            t.grad = None
        objective.full_batch(model)
        g = max(float(t.grad.abs().max()) for t in leaves)
        for e in ds.elements:
            b, _ = model.quadratic_term(e)
            with torch.no_grad():
                b.sub_(shift)
        for t in leaves:
            t.requires_grad_(False)
        return g

    at_fit, off = gradient(0.0), gradient(1e-3)
    assert off > 1e-6
    assert at_fit < 1e-6 * off


def test_blend_is_the_weighted_mean_of_network_and_quadratic_model(ds, featurize):
    net = make_model(ds, STRUCTURES, featurize, seed=5)
    data = FeaturizedDataset.from_structures(labelled(STRUCTURES, make_model(ds, STRUCTURES, featurize, seed=6),
                                                      featurize), ds, featurize)
    centers, widths = scalings(net)
    fit = quadratic.fit(data, range(len(data)), centers, widths, 1.0, 0.06, 0.01, ridge=1e-8)
    batch = data.collate(range(len(data)))
    parts = [{k: v.detach() for k, v in m(batch, stress=True).items()}
             for m in (net, quadratic.blend(net, fit, 1.0))]
    for w in (0.0, 0.3, 1.0):
        got = {k: v.detach() for k, v in quadratic.blend(net, fit, w)(batch, stress=True).items()}
        for key in ("energy", "forces", "virial"):
            want = (1 - w) * parts[0][key] + w * parts[1][key]
            torch.testing.assert_close(got[key], want, rtol=1e-12, atol=1e-10)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        quadratic.blend(net, fit, 1.5)
    with pytest.raises(ValueError, match="has a quadratic term already"):
        quadratic.blend(quadratic.blend(net, fit, 0.5), fit, 0.5)


def test_core_evaluates_the_quadratic_term_as_torch_does(tmp_path, ds, featurize):
    """Energy, forces and virial of a network + quadratic model, one element
    with a term and one without, through the written file and the C++ core."""
    model = with_quadratic(make_model(ds, STRUCTURES, featurize, seed=7), seed=8)
    pot = model.to_potential_data()
    pot.models["C"].quadratic = None
    model = NNPModel.from_potential_data(pot)
    assert model.quadratic_elements == ("Si",)
    path = potential_file.write(pot, tmp_path / "q.nnp")
    assert path.read_text().splitlines()[0] == "nnp-potential 3"
    core = _core.Potential(str(path))
    index = {e: n for n, e in enumerate(core.elements)}
    for atoms in (sic(6), si_triclinic(), si_c_cluster()):
        got = core.evaluate(atoms.positions, np.array([index[s] for s in atoms.get_chemical_symbols()], np.int32),
                            atoms.cell.array, [bool(p) for p in atoms.pbc])
        data = FeaturizedDataset.from_structures([atoms], ds, featurize)
        want = {k: v.detach().numpy() for k, v in model(data.collate([0]), stress=True).items()}
        assert got["energy"] == pytest.approx(want["energy"][0], rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(got["forces"], want["forces"], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(got["virial"], want["virial"][0], rtol=1e-9, atol=1e-10)


def test_forces_of_the_quadratic_term_are_minus_energy_gradient(ds, featurize):
    model = with_quadratic(make_model(ds, STRUCTURES, featurize, seed=9), seed=10, zero_network=True)
    atoms = sic(7)
    forces = model.predict(atoms, featurize, stress=False)[0]["forces"]
    h = 1e-4
    for k in range(3):
        for c in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[k, c] += sign * h
                energies.append(model.predict(moved, featurize, stress=False)[0]["energy"])
            assert forces[k, c] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=1e-7, rel=1e-6)


# ------------------------------------------------------------- the file


@pytest.fixture(scope="module")
def quadratic_text(ds, featurize):
    """A written potential with a quadratic term for Si only."""
    pot = with_quadratic(make_model(ds, STRUCTURES, featurize, seed=11), seed=12).to_potential_data()
    pot.models["C"].quadratic = None
    return potential_file.dumps(pot)


def test_file_round_trip_is_exact(quadratic_text):
    pot = potential_file.loads(quadratic_text)
    assert pot.format_version == 3 and quadratic_text.startswith("nnp-potential 3\n")
    assert potential_file.dumps(pot) == quadratic_text
    assert pot.models["C"].quadratic is None
    q = pot.models["Si"].quadratic
    assert q.matrix.shape == (6, 6) and np.array_equal(q.matrix, q.matrix.T)
    # Without the term, the lowest version that can express the file.
    pot.models["Si"].quadratic = None
    assert potential_file.dumps(pot).startswith("nnp-potential 1\n")


def _section(text: str) -> tuple[list[str], int]:
    lines = text.split("\n")
    return lines, next(i for i, l in enumerate(lines) if l.startswith("quadratic Si"))


def _bad_files(text: str):
    """(name, broken text, line the error must name, words of the message)."""
    lines, k = _section(text)
    M = int(lines[k].split()[2])

    def edit(f):
        out = lines.copy()
        f(out)
        return "\n".join(out)

    yield "version 2", text.replace("nnp-potential 3", "nnp-potential 2", 1), k + 1, "needs format version 3"
    without = "\n".join(lines[:k] + lines[k + 2 + M:])
    yield "version 3 without", without, 1, "without 'quadratic' sections must be written as version 1"
    row = k + 2 + 3  # 1-based line number of the matrix's row 3

    def asymmetric(out):
        words = out[row - 1].split()
        words[1] = repr(float(words[1]) + 1.0)  # row 3, column 2
        out[row - 1] = " ".join(words)

    yield "asymmetric", edit(asymmetric), row, "not symmetric (row 3, column 2)"
    yield "count", edit(lambda out: out.__setitem__(k, f"quadratic Si {M - 1}")), k + 1, f"quadratic has {M - 1}"
    yield "short row", edit(lambda out: out.__setitem__(row - 1, " ".join(out[row - 1].split()[:-1]))), row, "expected"
    yield "nan", edit(lambda out: out.__setitem__(k + 1, " ".join(["nan"] + out[k + 1].split()[1:]))), k + 2, "finite"
    second = "\n".join(lines[: k + 2 + M] + lines[k : k + 2 + M] + lines[k + 2 + M:])
    yield "twice", second, k + 2 + M + 1, "second 'quadratic' section for Si"
    first_descriptor = next(i for i, l in enumerate(lines) if l.startswith("descriptor Si"))
    early = "\n".join(lines[:first_descriptor] + lines[k : k + 2 + M] + lines[first_descriptor:k] + lines[k + 2 + M:])
    yield "before descriptor", early, first_descriptor + 1, "must follow 'descriptor Si'"


@pytest.mark.parametrize("case", ["version 2", "version 3 without", "asymmetric", "count", "short row", "nan",
                                  "twice", "before descriptor"])
def test_malformed_quadratic_sections_name_file_and_line(tmp_path, quadratic_text, case):
    name, broken, line, words = next(c for c in _bad_files(quadratic_text) if c[0] == case)
    path = tmp_path / "bad.nnp"
    path.write_text(broken)
    assert_refused_at_line(path, line, words)


# ------------------------------------------------ singular normal equations


def _solve_paths(monkeypatch) -> list[bool]:
    """Records, per fit, whether the normal equations were solved as they
    are (True) or found numerically singular (False)."""
    seen: list[bool] = []
    as_they_are = quadratic._solved_as_they_are

    def spy(system, rhs):
        theta = as_they_are(system, rhs)
        seen.append(theta is not None)
        return theta

    monkeypatch.setattr(quadratic, "_solved_as_they_are", spy)
    return seen


def _quadratic_alone(fit: quadratic.QuadraticFit, like: NNPModel) -> NNPModel:
    """e0 + Q of `fit` as a model (a network that gives 0), in `like`'s scaling."""
    zero = NNPModel(like.descriptors, [2], "linear")
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
        for e in like.elements:
            for dst, src in zip(zero.scaling(e), like.scaling(e)):
                dst.copy_(src)
    return quadratic.blend(zero, fit, 1.0)


def _assert_reproduces_labels(model: NNPModel, data: FeaturizedDataset, tol: float = 1e-6) -> None:
    """Energies within `tol` eV, forces within `tol` × the largest force."""
    pred = model(data.collate(range(len(data))), forces=True)
    scale = float(data.forces.abs().max())
    np.testing.assert_allclose(pred["energy"].detach().numpy(), data.energy.numpy(), rtol=0, atol=tol)
    np.testing.assert_allclose(pred["forces"].detach().numpy(), data.forces.numpy(), rtol=0, atol=tol * scale)


@pytest.mark.parametrize("ridge", [1e-8, 0.0])
def test_one_composition_makes_the_constants_singular_and_the_fit_copes(ds, featurize, monkeypatch, ridge):
    """Every structure 4 Si + 4 C: the energies fix only c_Si + c_C, forces
    never see the constants, so the unpenalised constants make the normal
    equations exactly singular (the water set's case). The fit takes the
    minimum-norm split and still reproduces every label."""
    same = [sic(k) for k in range(6)]
    truth = with_quadratic(make_model(ds, same, featurize, seed=1), seed=2, zero_network=True)
    data = FeaturizedDataset.from_structures(labelled(same, truth, featurize), ds, featurize)
    paths = _solve_paths(monkeypatch)
    centers, widths = scalings(truth)
    fit = quadratic.fit(data, range(len(data)), centers, widths, 1.0, 0.06, 0.01, ridge=ridge)
    assert paths == [False]
    _assert_reproduces_labels(_quadratic_alone(fit, truth), data, 1e-6 if ridge == 0 else 1e-4)  # the ridge's bias
    if ridge > 0:  # penalised alike, the two constants share the energy equally
        assert fit.constants["Si"] == pytest.approx(fit.constants["C"], rel=1e-6)


def test_a_descriptor_function_zero_on_every_atom_is_no_failure(ds, featurize, monkeypatch):
    """A function that is 0 for every atom (as an H–H–H angular function with
    no such triplets in range would be) makes its columns constant or
    collinear with others: singular without a ridge. The fit drops what the
    data do not determine and reproduces labels made without that function."""
    rng = np.random.default_rng(7)
    base = make_model(ds, STRUCTURES, featurize, seed=1)
    pot = base.to_potential_data()
    dead = 1  # the second function of Si
    for e, m in pot.models.items():
        m.quadratic = random_quadratic(pot.descriptors.size(e), rng)
        m.layers[-1].weights = np.zeros_like(m.layers[-1].weights)
        m.layers[-1].biases = np.zeros_like(m.layers[-1].biases)
    q = pot.models["Si"].quadratic
    q.linear[dead] = 0.0
    q.matrix[dead, :] = q.matrix[:, dead] = 0.0
    truth = NNPModel.from_potential_data(pot)
    data = FeaturizedDataset.from_structures(labelled(STRUCTURES, truth, featurize), ds, featurize)
    block = data.blocks["Si"]
    block.G[:, dead] = 0.0
    block.dG_dr[:, dead, :] = 0.0
    paths = _solve_paths(monkeypatch)
    centers, widths = scalings(truth)
    fit = quadratic.fit(data, range(len(data)), centers, widths, 1.0, 0.06, 0.01, ridge=0.0)
    assert paths == [False]
    _assert_reproduces_labels(_quadratic_alone(fit, truth), data)


def test_a_regular_fit_is_solved_as_it_always_was(ds, featurize, monkeypatch):
    """Mixed compositions and a ridge: today's solve, untouched (the Si
    default's file stays the same number for number)."""
    truth = with_quadratic(make_model(ds, STRUCTURES, featurize, seed=1), seed=2, zero_network=True)
    data = FeaturizedDataset.from_structures(labelled(STRUCTURES, truth, featurize), ds, featurize)
    paths = _solve_paths(monkeypatch)
    quadratic.fit(data, range(len(data)), *scalings(truth), 1.0, 0.06, 0.01, ridge=1e-8)
    assert paths == [True]


def test_the_water_holdout_split_fits(monkeypatch):
    """The holdout split of the water set (the default split seed and
    validation fraction): 128 H and 64 O in every frame, so the H and O
    constants are singular, and the H-centred H–O radial functions summed
    over H equal the O-centred O–H ones summed over O (collinear columns).
    A few radial functions per element keep it cheap; the default
    descriptor's fit failed on the same constants."""
    structures = read_structures(shared_data("water-deepmd/train.xyz"))
    radial = lambda *neighbours: tuple(G2(n, eta, 0.0, 4.0) for n in neighbours for eta in (0.5, 2.0))  # noqa: E731
    ds = DescriptorSet(("H", "O"), {"H": radial("H", "O"), "O": radial("H", "O")})
    config = TrainConfig()
    data = featurize_training_set(structures, ds, config)
    fit_idx, train_idx, val_idx = split_structures(data, config)
    assert len(val_idx) == 32 and len(train_idx) == 288
    model = build_model(data, ds, config, fit_idx)
    paths = _solve_paths(monkeypatch)
    for ridge in (config.quadratic_ridge, 0.0):
        fit = quadratic.fit(data, train_idx, *scalings(model), config.energy_weight, config.force_weight,
                            config.stress_weight, ridge, baseline=quadratic.core_baseline(model))
        assert all(np.isfinite(fit.constants[e]) and np.isfinite(fit.terms[e].matrix).all() for e in "HO")
        errors = evaluate(_quadratic_alone(fit, model), data, val_idx, config)
        assert errors.energy_rmse < 0.05 and errors.force_rmse < 2.0  # eV/atom, eV/Å: a fit, not noise
    assert paths == [False, False]
