"""The one writer and the one reader of the potential file agree: write →
C++ read → write gives the same text, over every feature of the format
(G2/G4/G5, both cutoff functions, half/full angular sums, several elements,
every activation, quadratic terms, repulsion, comments, versions 1–3; the
element-weighted functions and version 4 in tests/test_weighted.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import rattled_si, test_descriptor

from nnp import _core
from nnp.io import potential_file as pf


def every_feature(cutoff_function: str, angular_sum: str, quadratic: bool, repulsion: bool) -> pf.PotentialData:
    """Si and C, every kind of function, one hidden layer per activation."""
    d = test_descriptor(elements=("Si", "C"), cutoff_function=cutoff_function, angular_sum=angular_sum)
    rng = np.random.default_rng(1)
    hidden = [a for a in _core.ACTIVATIONS if a != "linear"]
    models = {}
    for e in d.elements:
        M = d.size(e)
        sizes = [M, *range(len(hidden) + 1, 1, -1), 1]
        layers = [pf.Layer(rng.normal(size=(n_out, n_in)), rng.normal(size=n_out), act)
                  for n_in, n_out, act in zip(sizes[:-1], sizes[1:], [*hidden, "linear"])]
        centre = rng.normal(size=M)
        scaling = pf.Scaling(centre, rng.uniform(0.1, 2.0, M), centre - 1.0, centre + 1.0)
        q = None
        if quadratic:
            A = rng.normal(size=(M, M))
            q = pf.QuadraticTerm(rng.normal(size=M), A + A.T)
        models[e] = pf.ElementModel(float(rng.normal()), scaling, layers, q)
    cores = [pf.Repulsion("Si", "C", 0.8, 1.9), pf.Repulsion("C", "C", 0.7, 1.5)] if repulsion else []
    comments = ["every feature", "two\nlines", "  indented", "non-ASCII: Å η"]
    return pf.PotentialData(d, models, comments, cores)


@pytest.mark.parametrize("cutoff_function", ("cos", "tanh3"))  # n2p2's other cutoffs: version 5, below
@pytest.mark.parametrize("angular_sum", _core.ANGULAR_SUMS)
@pytest.mark.parametrize("quadratic, repulsion, version", [(False, False, 1), (False, True, 2), (True, False, 3),
                                                           (True, True, 3)])
def test_write_read_write_is_the_same_text(cutoff_function, angular_sum, quadratic, repulsion, version):
    pot = every_feature(cutoff_function, angular_sum, quadratic, repulsion)
    text = pf.dumps(pot)
    assert text.startswith(f"nnp-potential {version}\n# every feature\n# two\n# lines\n#   indented\n")
    assert pot.format_version == version
    for word in ("G2 ", "G4 ", "G5 ", f"cutoff_function {cutoff_function}\n", f"angular_sum {angular_sum}\n",
                 *(f" {a}" for a in _core.ACTIVATIONS)):
        assert word in text
    assert ("quadratic Si" in text) == quadratic and ("repulsion zbl" in text) == repulsion

    spec = _core.parse_potential(text, "mem")
    assert spec.format_version == version and spec.lowest_format_version() == version
    assert _core.format_potential(spec) == text  # C++ read → C++ write
    again = pf.loads(text)
    assert pf.dumps(again) == text  # C++ read → Python view → C++ write
    assert again.descriptors == pot.descriptors and again.repulsion == pot.repulsion
    for e in pot.elements:
        a, b = pot.models[e], again.models[e]
        assert all(np.array_equal(x.weights, y.weights) and np.array_equal(x.biases, y.biases)
                   and x.activation == y.activation for x, y in zip(a.layers, b.layers))
        if quadratic:
            assert np.array_equal(a.quadratic.matrix, b.quadratic.matrix)

    # The evaluator built from the spec is the one built from the text.
    atoms = rattled_si((1, 1, 1), 0.1, 2)
    elements = np.array([0, 1] * 4, np.int32)
    args = (atoms.positions, elements, atoms.cell.array, [True] * 3)
    from_text = _core.Potential.from_string(text, "mem").evaluate(*args)
    from_spec = _core.Potential.from_spec(spec).evaluate(*args)
    assert from_text["energy"] == from_spec["energy"]
    assert np.array_equal(from_text["forces"], from_spec["forces"])


def test_spec_is_typed():
    spec = _core.parse_potential(pf.dumps(every_feature("cos", "half", True, True)))
    assert [e.symbol for e in spec.elements] == ["Si", "C"]
    kinds = {f.kind for f in spec.elements[0].functions}
    assert kinds == {_core.SymmetryFunctionKind.G2, _core.SymmetryFunctionKind.G4, _core.SymmetryFunctionKind.G5}
    assert spec.elements[0].layers[0].weights.shape == (spec.elements[0].layers[0].weights.shape[0],
                                                        len(spec.elements[0].functions))
    assert spec.elements[1].quadratic.matrix.shape == (len(spec.elements[1].functions),) * 2
    assert [(r.element_a, r.element_b) for r in spec.repulsion] == [(0, 1), (1, 1)]
    assert spec.comments == ["every feature", "two", "lines", "  indented", "non-ASCII: Å η"]
    assert set(_core.SYMMETRY_FUNCTION_KINDS) == {"G2", "G4", "G5", "W2", "W4", "W5", "C2", "C4", "C5", "CW2", "CW4", "CW5"}


def test_the_writer_checks_what_it_writes():
    pot = every_feature("cos", "half", True, False)
    bad_matrix = dataclasses.replace(pot.models["Si"].quadratic, matrix=pot.models["Si"].quadratic.matrix.copy())
    bad_matrix.matrix[0, 1] += 1.0
    cases = [
        (dataclasses.replace(pot.models["Si"], quadratic=bad_matrix), "symmetric"),
        (dataclasses.replace(pot.models["Si"], reference_energy=float("nan")), "reference energy"),
        (dataclasses.replace(pot.models["Si"], layers=pot.models["Si"].layers[:-1]), "one output"),
        (dataclasses.replace(pot.models["Si"], scaling=dataclasses.replace(
            pot.models["Si"].scaling, width=-pot.models["Si"].scaling.width)), "width > 0"),
    ]
    for model, match in cases:
        with pytest.raises(ValueError, match=match):
            pf.dumps(dataclasses.replace(pot, models={**pot.models, "Si": model}))
    with pytest.raises(ValueError, match="models for"):
        pf.dumps(dataclasses.replace(pot, models={"Si": pot.models["Si"]}))


def test_a_parameter_rule_lives_in_the_core():
    """A bad parameter is rejected with the core's message, whether it comes
    from Python or from a file, at the file's line."""
    f = _core.SymmetryFunction(kind=_core.SymmetryFunctionKind.G2, element_a=0, eta=0.1, rc=_core.MAX_CUTOFF + 1)
    assert f.parameter_error() == "rc must be <= 30 Å"
    text = pf.dumps(every_feature("cos", "half", False, False))
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("G2 "))
    lines[k] = "G2 Si 0.1 0 31"
    with pytest.raises(pf.PotentialFileError, match=f"^mem:{k + 1}: rc must be <= 30 Å"):
        pf.loads("\n".join(lines) + "\n", "mem")


# Version 5: n2p2's cutoffs (with the inner radius alpha) and the compact functions.
@pytest.mark.parametrize("cutoff_function, alpha", [(c, 0.0) for c in _core.CUTOFF_FUNCTIONS[2:]] +
                         [("cos", 0.25), ("poly2", 0.5)])
def test_version_5_write_read_write_is_the_same_text(cutoff_function, alpha):
    from nnp.descriptors import C2, C4, C5, CW2, CW5, DescriptorSet

    pot = every_feature("cos", "half", True, True)
    compact = (C2("C", -4.5, 4.5, "p2"), C2("Si", 0.5, 4.0, "p3a"), C4(("Si", "C"), -4.0, 4.0, -90.0, 90.0, "p2a"),
               C5(("C", "C"), 0.0, 4.2, 60.0, 180.0, "e"), CW2(-4.0, 4.0, "p4"), CW5(-4.0, 4.0, 90.0, 270.0, "p1"))
    d = pot.descriptors
    functions = {e: d.functions[e] + compact for e in d.elements}
    pot.descriptors = DescriptorSet(d.elements, functions, cutoff_function, d.angular_sum, alpha)
    for m in pot.models.values():
        n = len(compact)
        m.scaling = pf.Scaling(*(np.concatenate([v, np.full(n, x)]) for v, x in
                                 zip((m.scaling.center, m.scaling.width, m.scaling.min, m.scaling.max), (0, 1, -1, 1))))
        w = m.layers[0].weights
        m.layers[0].weights = np.concatenate([w, np.ones((w.shape[0], n))], axis=1)
        m.quadratic = None
    text = pf.dumps(pot)
    assert text.startswith("nnp-potential 5\n") and pot.format_version == 5
    assert f"cutoff_function {cutoff_function}" + (f" alpha {alpha!r}" if alpha else "") + "\n" in text
    for line in ("C2 C -4.5 4.5 p2\n", "C4 C Si -4 4 -90 90 p2a\n", "C5 C C 0 4.2000000000000002 60 180 e\n",
                 "CW2 -4 4 p4\n", "CW5 -4 4 90 270 p1\n"):
        assert line in text
    spec = _core.parse_potential(text, "mem")
    assert spec.format_version == 5 and spec.cutoff_alpha == alpha
    assert _core.format_potential(spec) == text
    assert pf.dumps(pf.loads(text)) == text
    with pytest.raises(ValueError, match="needs format version 5"):
        _core.parse_potential(text.replace("nnp-potential 5", "nnp-potential 4", 1), "mem")
