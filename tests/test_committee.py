"""nnp.committee: the mean of several potentials as one potential file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nnp import _core
from nnp.io import potential_file
from nnp.committee import main, mean_potential
from nnp.io.potential_file import Repulsion
from test_model import core_featurizer, make_model, mixed_descriptors, si_c_cluster, si_triclinic, sic

STRUCTURES = [sic(), si_triclinic(), si_c_cluster()]


def member(seed: int, hidden=(8, 6), shift: float = 0.0, repulsion=()) -> potential_file.PotentialData:
    """A random two-element model; `shift` moves its scaling and reference
    energies away from the others', so the mean has to reconcile them."""
    ds = mixed_descriptors()
    model = make_model(ds, STRUCTURES, core_featurizer(ds), hidden=hidden, seed=seed)
    with torch.no_grad():
        for p in model.parameters():  # away from zero biases
            p.add_(0.2 * torch.randn(p.shape, dtype=p.dtype, generator=torch.Generator().manual_seed(seed + p.numel())))
        for e in model.elements:
            center, width, _, _ = model.scaling(e)
            center.add_(shift * center.abs().clamp(min=0.1))
            width.mul_(1.0 + shift)
            model.reference_energy(e).add_(shift)
    pot = model.to_potential_data()
    pot.repulsion = list(repulsion)
    return pot


def evaluate(pot) -> list[dict]:
    core = _core.Potential.from_string(potential_file.dumps(pot))
    index = {e: i for i, e in enumerate(core.elements)}
    return [core.evaluate(a.positions, np.array([index[x] for x in a.get_chemical_symbols()], np.int32),
                          a.cell.array, [bool(p) for p in a.pbc]) for a in STRUCTURES]


@pytest.mark.parametrize("hidden", [(8, 6), (5,), ()], ids=["2 layers", "1 layer", "linear"])
def test_the_mean_predicts_the_mean_of_the_members(hidden):
    """Energy, forces and virial of the written mean equal the members' mean
    through the C++ core, also when their scalings and reference energies differ."""
    members = [member(0, hidden), member(1, hidden, shift=0.3), member(2, hidden, shift=-0.2)]
    mean = mean_potential(members)
    for e in mean.elements:
        sizes = [layer.weights.shape[0] for layer in mean.models[e].layers]
        assert sizes == [3 * h for h in hidden] + [1]
    got = evaluate(mean)
    each = [evaluate(m) for m in members]
    for s in range(len(STRUCTURES)):
        want_e = np.mean([r[s]["energy"] for r in each])
        assert got[s]["energy"] == pytest.approx(want_e, rel=1e-13, abs=1e-12)
        for key in ("forces", "virial"):
            want = np.mean([np.asarray(r[s][key]) for r in each], axis=0)
            np.testing.assert_allclose(np.asarray(got[s][key]), want, rtol=0, atol=1e-11)


def with_quadratic_term(pot: potential_file.PotentialData, seed: int, elements=("Si", "C")):
    rng = np.random.default_rng(seed)
    for e in elements:
        M = pot.descriptors.size(e)
        A = rng.normal(0.0, 0.05, (M, M))
        pot.models[e].quadratic = potential_file.QuadraticTerm(rng.normal(0.0, 0.1, M), 0.5 * (A + A.T))
    return pot


def test_the_mean_of_members_with_quadratic_terms():
    """Quadratic terms are rewritten for the common scaling and averaged
    (a member without one counts as 0): the mean still predicts the mean."""
    members = [with_quadratic_term(member(0), 10), member(1, shift=0.3),
               with_quadratic_term(member(2, shift=-0.2), 11, elements=("Si",))]
    mean = mean_potential(members)
    assert mean.models["Si"].quadratic is not None and mean.models["C"].quadratic is not None
    assert mean.format_version == 3
    got = evaluate(mean)
    each = [evaluate(m) for m in members]
    for s in range(len(STRUCTURES)):
        assert got[s]["energy"] == pytest.approx(np.mean([r[s]["energy"] for r in each]), rel=1e-13, abs=1e-11)
        for key in ("forces", "virial"):
            want = np.mean([np.asarray(r[s][key]) for r in each], axis=0)
            np.testing.assert_allclose(np.asarray(got[s][key]), want, rtol=0, atol=1e-10)
    assert mean_potential([member(0), member(1)]).models["Si"].quadratic is None


def test_members_with_the_same_scaling_are_copied_exactly_and_may_differ_in_width():
    a, b = member(0, (8, 6)), member(1, (5, 4))
    mean = mean_potential([a, b])
    layers = mean.models["Si"].layers
    assert [layer.weights.shape for layer in layers] == [(13, a.descriptors.size("Si")), (10, 13), (1, 10)]
    assert np.array_equal(layers[0].weights[:8], a.models["Si"].layers[0].weights)
    assert np.array_equal(layers[0].weights[8:], b.models["Si"].layers[0].weights)
    # Block-diagonal: the members stay independent.
    assert not layers[1].weights[:6, 8:].any() and not layers[1].weights[6:, :8].any()
    # The training range is the union of the members'.
    s = mean.models["C"].scaling
    assert np.array_equal(s.min, np.minimum(a.models["C"].scaling.min, b.models["C"].scaling.min))
    assert np.array_equal(s.max, np.maximum(a.models["C"].scaling.max, b.models["C"].scaling.max))


def test_one_member_is_itself():
    a = member(4)
    assert potential_file.dumps(mean_potential([a])) == potential_file.dumps(a)


def test_incompatible_members_are_clear_errors():
    a = member(0)
    other_functions = dataclasses.replace(member(1), descriptors=mixed_descriptors(cutoff_function="tanh3"))
    with pytest.raises(ValueError, match="different symmetry functions"):
        mean_potential([a, other_functions], ["a.nnp", "b.nnp"])
    with pytest.raises(ValueError, match="differ in depth or activations"):
        mean_potential([a, member(1, hidden=(8,))], ["a.nnp", "b.nnp"])
    core = [Repulsion("Si", "Si", 1.0, 1.5)]
    with pytest.raises(ValueError, match="different repulsive cores"):
        mean_potential([a, member(1, repulsion=core)], ["a.nnp", "b.nnp"])
    with pytest.raises(ValueError, match="no potentials"):
        mean_potential([])


def test_cli_writes_the_mean_and_never_overwrites(tmp_path, capsys):
    paths = []
    for k in range(2):
        paths.append(potential_file.write(member(k), tmp_path / f"m{k}.nnp"))
    out = tmp_path / "mean.nnp"
    assert main([str(p) for p in paths] + ["--output", str(out)]) == 0
    text = out.read_text()
    assert "the mean of 2 potentials" in text and f"member 1: {paths[1].resolve()} sha256" in text
    assert potential_file.dumps(potential_file.read(out)) == potential_file.dumps(
        dataclasses.replace(mean_potential([potential_file.read(p) for p in paths]),
                            comments=potential_file.read(out).comments))
    assert main([str(p) for p in paths] + ["--output", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([str(p) for p in paths] + ["--output", str(out), "--force"]) == 0
    assert main([str(paths[0]), "--output", str(tmp_path / "x.nnp")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main([str(paths[0]), str(paths[1]), "--output", str(paths[1]), "--force"]) == 2
    assert "one of the inputs" in capsys.readouterr().err
    assert main([str(paths[0]), str(tmp_path / "missing.nnp"), "--output", str(tmp_path / "y.nnp")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.nnp").exists() and not (tmp_path / "y.nnp").exists()
