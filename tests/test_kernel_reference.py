"""The optimised C++ descriptor kernels against a straightforward reference.

The kernels (cpp/src/descriptor.cpp) evaluate narrow G4 from compacted,
vectorised triplet lists with polynomial exp/cos, and wide G5 with integer
ζ <= 8 from neighbour moment tensors (no triple loop at all); forces come from
a separate contracted pass. The reference (reference_descriptors.py: torch,
float64, every function a sum over all ordered triplets, derivatives by
autograd, a plain network on top) shares no code with them. Descriptors,
their Jacobians, energies and forces must agree to ~1e-12 relative, for the
study's presets (narrow and wide) and for a two-element set with every
variant: R_s > 0, non-integer ζ, integer ζ above the factorisation limit,
two cutoff radii, half and full angular sums, both cutoff functions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list
from conftest import mixed_sic, random_potential, rattled_si

import reference_descriptors as ref
from nnp import NNPCalculator
from nnp import descriptors as D
from nnp.io import potential_file as pf
from nnp.descriptors import G2, G4, G5, DescriptorSet

torch.set_num_threads(1)

# Relative agreement demanded; "relative" to the scale of each function (its
# largest value over the structure) or of the forces, because the factorised
# G5 sums terms of both signs and a value can be far smaller than its terms.
RTOL = 1e-12


def two_element_set(cutoff_function: str, angular_sum: str) -> DescriptorSet:
    """Si and C centres; narrow and wide functions of every kind."""
    rc, rc2 = 5.0, 4.2
    si = (
        G2("Si", 0.05, 0.0, rc),
        G2("C", 0.3, 1.2, rc2),
        G4(("Si", "Si"), 0.01, 1.0, 1, 0.0, rc),
        G4(("Si", "Si"), 0.02, 4.0, -1, 0.0, rc),
        G4(("Si", "C"), 0.02, 2.5, -1, 0.6, rc),  # non-integer ζ, R_s > 0
        G4(("C", "C"), 0.03, 16.0, 1, 0.0, rc2),
        G5(("Si", "Si"), 0.01, 1.0, -1, 0.0, rc),  # factorised (integer ζ <= 8) ...
        G5(("Si", "Si"), 0.01, 4.0, 1, 0.0, rc),
        G5(("Si", "Si"), 0.04, 2.0, -1, 0.8, rc),
        G5(("Si", "C"), 0.02, 3.0, 1, 0.0, rc),
        G5(("Si", "C"), 0.015, 8.0, -1, 0.5, rc),
        G5(("C", "C"), 0.01, 2.0, -1, 0.0, rc2),
        G5(("Si", "C"), 0.02, 1.5, -1, 0.0, rc),  # ... and triple loop (non-integer ζ, ζ > 8)
        G5(("Si", "Si"), 0.01, 16.0, 1, 0.0, rc),
    )
    c = (
        G2("Si", 0.1, 0.0, rc),
        G2("C", 0.03, 0.5, rc),
        G4(("Si", "C"), 0.01, 1.0, -1, 0.0, rc),
        G4(("Si", "Si"), 0.005, 2.0, 1, 0.3, rc2),
        G5(("Si", "Si"), 0.02, 2.0, 1, 0.0, rc2),
        G5(("Si", "C"), 0.01, 4.0, -1, 0.7, rc),
        G5(("C", "C"), 0.0, 1.0, 1, 0.0, rc),
        G5(("Si", "Si"), 0.02, 2.5, 1, 0.2, rc),
    )
    return DescriptorSet(("Si", "C"), {"Si": si, "C": c}, cutoff_function, angular_sum)


def shifted_chains() -> DescriptorSet:
    """Runs of one η with R_s in steps (computed from one another in the
    core): shifted G2 rounded to 6 decimals as series S/C write them (two
    step sizes), shifted G5 on shells, and runs the core must compute one
    by one (three step sizes; η so large the chain would underflow)."""
    shells = [round(2.1 + k * 3.48 / 23, 6) for k in range(24)]
    funcs = [G2("Si", 21.84073193288408, rs) for rs in shells]
    funcs += [G5(("Si", "Si"), 2.0230545646716855, z, lam, round(2.1 + k * 0.4971428, 6))
              for k in range(8) for z, lam in ((1.0, 1), (3.0, -1))]
    funcs += [G2("Si", 3.0, rs) for rs in (1.0, 1.5, 2.25, 3.0, 3.3, 4.0)]
    funcs += [G2("Si", 80.0, 2.0 + 0.1 * k) for k in range(6)]
    return DescriptorSet(("Si",), {"Si": tuple(funcs)})


CASES = {
    # name: (descriptor set, structure)
    "shifted-chains": (shifted_chains, lambda: rattled_si((1, 1, 1), 0.2, 27)),
    "A52": (lambda: D.preset("A52"), lambda: rattled_si((1, 1, 1), 0.15, 21)),
    "A52-wide": (lambda: D.preset("A52-wide"), lambda: rattled_si((1, 1, 1), 0.15, 22)),
    "A16": (lambda: D.preset("A16"), lambda: rattled_si((1, 1, 1), 0.2, 23)),
    "B40-wide": (lambda: D.preset("B40-wide"), lambda: rattled_si((1, 1, 1), 0.2, 24)),
    "A28-wide-tanh3-full": (
        lambda: _variant(D.preset("A28-wide"), "tanh3", "full"),
        lambda: rattled_si((1, 1, 1), 0.2, 25),
    ),
}
for _cut in ("cos", "tanh3"):
    for _sum in ("half", "full"):
        CASES[f"SiC-{_cut}-{_sum}"] = (
            lambda c=_cut, s=_sum: two_element_set(c, s),
            lambda: mixed_sic(26),
        )


def _variant(ds: DescriptorSet, cutoff_function: str, angular_sum: str) -> DescriptorSet:
    return DescriptorSet(ds.elements, ds.functions, cutoff_function, angular_sum)


# ----------------------------------------------------------------- reference


ACTIVATIONS = {
    "linear": lambda z: z,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": torch.nn.functional.softplus,
    "silu": torch.nn.functional.silu,
}


def reference_energy_forces(pot: pf.PotentialData, atoms) -> tuple[float, np.ndarray, np.ndarray]:
    """Total energy, per-atom energies and forces: reference descriptors of
    positions (every periodic image an explicit vector), the potential's
    scaling and networks written out, and forces −∂E/∂r by autograd."""
    ds = pot.descriptors
    elem = ds.element_indices(atoms.get_chemical_symbols()).astype(np.int64)
    i, j, S = neighbor_list("ijS", atoms, ds.cutoff)
    pos = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    shift = torch.tensor(S, dtype=torch.float64) @ torch.tensor(atoms.cell.array, dtype=torch.float64)
    vec = pos[torch.as_tensor(j)] - pos[torch.as_tensor(i)] + shift
    geo = ref.Geometry(i, elem[j], vec, len(atoms))
    energies = torch.zeros(len(atoms), dtype=torch.float64)
    for n, e in enumerate(ds.elements):
        rows = torch.as_tensor(np.flatnonzero(elem == n))
        if not len(rows):
            continue
        G = torch.stack(ref.evaluate_columns(ds, geo, e), dim=1)[rows]
        model = pot.models[e]
        x = (G - torch.tensor(model.scaling.center)) / torch.tensor(model.scaling.width)
        for layer in model.layers:
            x = ACTIVATIONS[layer.activation](x @ torch.tensor(layer.weights).T + torch.tensor(layer.biases))
        energies = energies.index_add(0, rows, model.reference_energy + x[:, 0])
    total = energies.sum()
    (grad,) = torch.autograd.grad(total, pos)
    return float(total.detach()), energies.detach().numpy(), -grad.numpy()


def summed_jacobian(f: dict) -> dict:
    """∂G/∂r per (centre row, neighbour atom), image entries summed."""
    out = {}
    for c, j, d in zip(f["pair_center"], f["pair_neighbor"], f["dG_dr"]):
        out[(c, j)] = out.get((c, j), 0) + d
    return out


def descriptor_errors(ds: DescriptorSet, atoms) -> tuple[float, float]:
    """Largest error of G and of ∂G/∂r relative to each function's scale."""
    ours, theirs = ds.featurize(atoms), ref.featurize(ds, atoms)
    g_err = j_err = 0.0
    for e in ds.elements:
        np.testing.assert_array_equal(ours[e]["atoms"], theirs[e]["atoms"])
        if not len(ours[e]["atoms"]):
            continue
        G, Gref = ours[e]["G"], theirs[e]["G"]
        scale = np.maximum(np.abs(Gref).max(axis=0), 1e-300)
        g_err = max(g_err, float((np.abs(G - Gref) / scale).max()))
        a, b = summed_jacobian(ours[e]), summed_jacobian(theirs[e])
        # per function: its largest derivative over all (centre, neighbour)
        jac_scale = np.maximum(np.stack([np.abs(v).max(axis=1) for v in b.values()]).max(axis=0), 1e-300)
        for key in set(a) | set(b):
            diff = np.abs(np.asarray(a.get(key, 0.0)) - np.asarray(b.get(key, 0.0)))
            j_err = max(j_err, float((diff.max(axis=1) / jac_scale).max()))
    return g_err, j_err


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", sorted(CASES))
def test_descriptors_and_jacobians_match_reference(case):
    make_ds, make_atoms = CASES[case]
    ds, atoms = make_ds(), make_atoms()
    g_err, j_err = descriptor_errors(ds, atoms)
    assert g_err < RTOL, f"descriptors differ by {g_err:.2e} of their scale"
    assert j_err < RTOL, f"Jacobians differ by {j_err:.2e} of their scale"


@pytest.mark.parametrize("case", sorted(CASES))
def test_energies_and_forces_match_reference(case, tmp_path):
    make_ds, make_atoms = CASES[case]
    ds, atoms = make_ds(), make_atoms()
    pot = random_potential(ds, [atoms], seed=5)
    path = pf.write(pot, tmp_path / "pot.nnp")
    atoms.calc = NNPCalculator(path)
    energy, forces, energies = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_potential_energies()
    ref_energy, ref_energies, ref_forces = reference_energy_forces(pot, atoms)
    assert abs(energy - ref_energy) < RTOL * abs(ref_energy)
    np.testing.assert_allclose(energies, ref_energies, rtol=RTOL, atol=0)
    scale = np.abs(ref_forces).max()
    assert scale > 1e-2  # the comparison is not vacuous
    assert np.abs(forces - ref_forces).max() < RTOL * scale


def test_wide_preset_with_many_neighbours():
    """A52-wide (ζ ∈ {1, 2, 3, 4}: every angular function factorised) on a
    64-atom cell, ≈45 neighbours per atom summed into the moment tensors."""
    ds = D.preset("A52-wide")
    atoms = rattled_si((2, 2, 2), 0.1, 27)
    ours = ds.compute(atoms)
    theirs = ref.featurize(ds, atoms, derivatives=False)["Si"]["G"]
    scale = np.abs(theirs).max(axis=0)
    assert (np.abs(ours - theirs) / scale).max() < RTOL
    assert all(isinstance(f, (G2, G5)) and (isinstance(f, G2) or f.zeta in D.WIDE_ZETAS) for f in ds.functions["Si"])


def test_reference_comparison_detects_a_perturbed_kernel():
    """The tolerances are tight enough to catch a kernel that is wrong by one
    part in 1e9 (here: the C++ side evaluates η(1 + 1e-9) in one function)."""
    ds = two_element_set("cos", "half")
    atoms = mixed_sic(26)
    perturbed_si = list(ds.functions["Si"])
    for k, f in enumerate(perturbed_si):
        if isinstance(f, G5) and f.zeta == 4.0:  # a factorised one
            perturbed_si[k] = G5(f.neighbors, f.eta * (1 + 1e-9), f.zeta, f.lambda_, f.rs, f.rc)
            break
    else:
        raise AssertionError("no factorised function to perturb")
    perturbed = DescriptorSet(ds.elements, {"Si": tuple(perturbed_si), "C": ds.functions["C"]})
    ours = perturbed.featurize(atoms, derivatives=False)["Si"]["G"]
    theirs = ref.featurize(ds, atoms, derivatives=False)["Si"]["G"]
    rel = np.abs(ours - theirs).max(axis=0) / np.abs(theirs).max(axis=0)
    assert rel.max() > 10 * RTOL
    assert math.isclose(rel.max(), rel[k], rel_tol=1e-6)  # and nothing else moved
