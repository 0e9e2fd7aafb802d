"""Training without stored descriptor derivatives: the C++ core's force pass
(v_p = Σ_μ g_μ ∂G_μ/∂r_p) and Jacobian-vector product (ĝ_μ = Σ_p u_p·∂G_μ/∂r_p)
against the same contractions over the explicit Jacobian of `featurize`
(itself tested against the brute-force reference, tests/test_kernel_reference.py),
for every descriptor family: radial, narrow triple loop, factorised (moment)
and triple-loop wide angular, weighted and compact functions, several cutoffs
and both angular sums."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from conftest import mixed_sic, rattled_si
from test_kernel_reference import two_element_set
from test_n2p2_examples import compact_set
from test_weighted import structure, weighted_set

from nnp import _core
from nnp import descriptors as D

RTOL = 1e-12

CASES = {
    "A52": (lambda: D.preset("A52"), lambda: rattled_si((1, 1, 1), 0.15, 21)),
    "A52-wide": (lambda: D.preset("A52-wide"), lambda: rattled_si((1, 1, 1), 0.15, 22)),
    "SiC-cos-half": (lambda: two_element_set("cos", "half"), lambda: mixed_sic(26)),
    "SiC-tanh3-full": (lambda: two_element_set("tanh3", "full"), lambda: mixed_sic(27)),
    "weighted-3": (lambda: weighted_set(3, plain=True), lambda: structure(3, seed=3)),
    "weighted-2-full": (lambda: weighted_set(2, "tanh3", "full"), lambda: structure(2, seed=2)),
    "compact-poly2": (lambda: compact_set("poly2", 0.5), lambda: mixed_sic(3)),
    "compact-exp-full": (lambda: compact_set("exp", 0.2, "full"), lambda: mixed_sic(4)),
}


def pair_arrays(ds, atoms, feats, e):
    """center, pair_vector, pair_element of element e's entries."""
    kinds = ds.element_indices(atoms.get_chemical_symbols())
    f = feats[e]
    return (np.asarray(f["pair_center"], dtype=np.int64), np.asarray(f["pair_vector"]).reshape(-1, 3),
            kinds[np.asarray(f["pair_neighbor"])])


@pytest.mark.parametrize("case", sorted(CASES))
def test_force_pass_and_jvp_match_the_jacobian(case):
    make_ds, make_atoms = CASES[case]
    ds, atoms = make_ds(), make_atoms()
    feats = ds.featurize(atoms, derivatives=True)
    rng = np.random.default_rng(7)
    checked = 0
    for k, e in enumerate(ds.elements):
        R, M = np.asarray(feats[e]["G"]).reshape(-1, ds.size(e)).shape
        if R == 0:
            continue
        center, vec, kind = pair_arrays(ds, atoms, feats, e)
        J = np.asarray(feats[e]["dG_dr"]).reshape(len(center), M, 3)
        g = rng.normal(size=(R, M))
        u = rng.normal(size=(len(center), 3))
        for threads in (1, 3):
            v = ds.core().contract_pairs(k, g, center, vec, kind, threads)
            v_ref = np.einsum("pm,pmc->pc", g[center], J)
            assert np.abs(v - v_ref).max() <= RTOL * np.abs(v_ref).max(), "force pass"
            ju = ds.core().contract_pairs_adjoint(k, u, center, vec, kind, R, threads)
            ju_ref = np.zeros((R, M))
            np.add.at(ju_ref, center, np.einsum("pc,pmc->pm", u, J))
            # relative to each function's scale: its largest |J·u| over the rows
            scale = np.maximum(np.abs(ju_ref).max(axis=0), 1e-300)
            err = (np.abs(ju - ju_ref) / scale).max()
            assert err <= RTOL, f"J·u differs by {err:.2e} of its scale"
        checked += 1
    assert checked == len([e for e in ds.elements if e in atoms.get_chemical_symbols()])


def test_jvp_is_a_directional_derivative():
    """J·u against central differences of G along u (moved neighbours)."""
    ds = two_element_set("cos", "half")
    atoms = mixed_sic(26)
    feats = ds.featurize(atoms, derivatives=True)
    e = atoms[0].symbol  # row 0 of its block is atom 0
    k = ds.elements.index(e)
    center, vec, kind = pair_arrays(ds, atoms, feats, e)
    rows = center == 0
    u = np.random.default_rng(3).normal(size=(int(rows.sum()), 3))
    ju = ds.core().contract_pairs_adjoint(k, u, center[rows], vec[rows], kind[rows], 1, 1)[0]
    h = 1e-5
    values = []
    for s in (1, -1):
        # One centre at the origin and its neighbours displaced: G by the core.
        pos = np.vstack([np.zeros(3), vec[rows] + s * h * u])
        symbols = [e] + [ds.elements[i] for i in kind[rows]]
        cluster = Atoms(symbols, positions=pos + 20.0, cell=np.eye(3) * 60.0, pbc=False)
        values.append(np.asarray(ds.featurize(cluster, derivatives=False)[e]["G"]).reshape(-1, ds.size(e))[0])
    fd = (values[0] - values[1]) / (2 * h)
    assert np.abs(ju - fd).max() < 1e-7 * max(1.0, np.abs(fd).max())


def test_bad_pair_arrays_are_refused():
    ds = D.preset("A16")
    atoms = rattled_si((1, 1, 1), 0.1, 1)
    feats = ds.featurize(atoms, derivatives=True)
    center, vec, kind = pair_arrays(ds, atoms, feats, "Si")
    R = len(feats["Si"]["atoms"])
    core = ds.core()
    with pytest.raises(ValueError, match="grouped by centre"):
        core.contract_pairs_adjoint(0, np.zeros_like(vec), center[::-1].copy(), vec, kind, R)
    with pytest.raises(ValueError, match="outside the"):
        core.contract_pairs(0, np.zeros((R, ds.size("Si"))), center + R, vec, kind)
    with pytest.raises(ValueError, match="element index"):
        core.contract_pairs(3, np.zeros((R, ds.size("Si"))), center, vec, kind)
    with pytest.raises(ValueError, match="pair_vector"):
        core.contract_pairs(0, np.zeros((R, ds.size("Si"))), center, vec[:-1], kind)
    assert _core.Descriptors is type(core)
