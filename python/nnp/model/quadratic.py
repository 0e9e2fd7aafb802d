"""The quadratic term of an atomic energy, fitted by ridge regression.

    E_i = e0[Z_i] + NN_{Z_i}(x_i) + Q_{Z_i}(x_i),   Q(x) = b·x + xᵀ A x

with x the scaled descriptor of atom i (x = (G − center)/width, the network's
input) and A symmetric. Q is linear in its parameters, so a model made of
Q alone (plus e0) is fitted to energies, forces and virials in closed form:
the loss of `nnp.train` (per-atom energy, force components, per-atom virial,
with the same weights) is a quadratic form in (e0, b, A), minimised by one
linear solve. On the Si data, with the descriptor C64, such a model alone is
about as accurate as the 2 × 30 network, and its errors are only loosely
correlated with the network's, so that their mean is better than either
(docs/accuracy.md): `nnp.train` writes that mean as one potential,
E_i = e0 + (1 − w) NN(x) + w Q(x), with `quadratic_weight` w.

The design matrix of one structure has one row for its energy per atom, one
per force component and one per virial component per atom; its columns are,
per element e, [n_e, Σ_i x_iμ, Σ_i x_iμ x_iν (μ ≤ ν)]. The force columns come
from the same precomputed descriptor Jacobian that training uses: for a
neighbour entry p (centre i, neighbour j, r_ij = r_j − r_i) and feature φ(x_i),
∂φ/∂r_ij = Σ_μ ∂φ/∂x_μ · dG_dr[p, μ, :]/width_μ enters F_i with + and F_j with
− (F = −∂E/∂r), and the virial as W −= r_ij ⊗ ∂φ/∂r_ij; the same conventions
as nnp.model.network (the torch model). The normal equations are accumulated structure by structure (one process
or several, nnp.train.distributed, add them in the same order), so memory
does not grow with the data set (D² for D parameters: 37 MB for 64
functions and one element). On the Si data (193
structures, 64 functions) a fit takes about 15 s on one core.

The ridge penalises every coefficient but the constants e0 (they carry the
energy scale), so the normal equations can be singular in the constants:
when every structure has the same composition, as in liquid-water frames
(128 H and 64 O each), the energy rows fix only Σ_e (n_e/N) e0_e and forces
and virials do not see e0 at all. The water set's holdout split made the
solve fail on exactly that (its 2 × 2 block of H and O counts,
Σw² [[4/9, 2/9], [2/9, 1/9]], has determinant 0); where rounding leaves a
tiny pivot instead (the all-frame fit of the same data did not fail), the
split of the energy between elements is arbitrary. Columns that are constant or collinear over the training
atoms (a function zero on every atom, or one equal to another) would do the
same without the ridge (quadratic_ridge 0). So the system is solved as it is
(torch.linalg.solve, today's arithmetic) only when a Cholesky factorisation
and LAPACK's condition estimate say it is numerically regular (RCOND);
otherwise the constants are penalised too (relative to their mean
diagonal: an undetermined split of the energy between elements then follows
the composition, as NNPModel.fit_reference_energies' lstsq does) and a
pseudo-inverse (eigen-decomposition, relative cutoff RCOND) solves what is
left, so the fit cannot fail on any data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.linalg import blas, lapack

from nnp.constants import VOIGT_I, VOIGT_J
from nnp.data import FeaturizedDataset
from nnp.io.potential_file import QuadraticTerm
from nnp.model.network import NNPModel

DTYPE = torch.float64
# The normal equations are solved as they are down to a reciprocal condition
# number (equilibrated) of RCOND, below which float64 (ε = 2.2e-16) leaves
# some direction undetermined; the pseudo-inverse drops the eigen-directions
# below RCOND × the largest (numpy.linalg.pinv's default cutoff). The Si
# default's is about 2e-13, set by its ridge.
RCOND = 1e-15


@dataclass
class QuadraticFit:
    """What `fit` returns: per element the constant (eV per atom) and Q."""

    constants: dict[str, float]
    terms: dict[str, QuadraticTerm]


def _upper(M: int) -> tuple[torch.Tensor, torch.Tensor]:
    iu = torch.triu_indices(M, M)
    return iu[0], iu[1]


def terms_from_coefficients(coef: np.ndarray, M: int) -> QuadraticTerm:
    """[b (M), a_μν for μ ≤ ν] -> Q with A = A^T: xᵀAx = Σ_{μ≤ν} a_μν x_μ x_ν."""
    K = M * (M + 1) // 2
    if coef.shape != (M + K,):
        raise ValueError(f"expected {M + K} coefficients, got {coef.shape}")
    iu0, iu1 = (t.numpy() for t in _upper(M))
    A = np.zeros((M, M))
    A[iu0, iu1] = coef[M:]
    A = 0.5 * (A + A.T)  # off-diagonal a_μν split over (μ, ν) and (ν, μ); the diagonal stays
    return QuadraticTerm(coef[:M].copy(), A)


class _Design:
    """Design-matrix rows of single structures (energy per atom, forces, virial per atom)."""

    def __init__(self, data: FeaturizedDataset, centers: dict[str, torch.Tensor], widths: dict[str, torch.Tensor]):
        self.data = data
        self.elements = data.elements
        self.centers, self.widths = centers, widths
        self.sizes = {e: int(centers[e].shape[0]) for e in self.elements}
        self.upper = {e: _upper(M) for e, M in self.sizes.items()}
        # Column blocks per element: [count, linear (M), upper triangle (K)].
        self.offsets = {}
        col = 0
        for e in self.elements:
            self.offsets[e] = col
            M = self.sizes[e]
            col += 1 + M + M * (M + 1) // 2
        self.n_columns = col

    def rows(self, s: int, with_virial: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(energy row (D,), force rows (3N, D), virial rows (6, D) or None) of
        structure s, energy and virial not yet divided by the atom count."""
        data = self.data
        a0 = int(data.atom_offsets[s])
        N = int(data.n_atoms[s])
        D = self.n_columns
        energy = torch.zeros(D, dtype=DTYPE)
        forces = torch.zeros((N, 3, D), dtype=DTYPE)
        virial = torch.zeros((3, 3, D), dtype=DTYPE) if with_virial else None
        for e in self.elements:
            b = data.blocks[e]
            r0, r1 = int(data.row_offsets[e][s]), int(data.row_offsets[e][s + 1])
            if r1 == r0:
                continue
            M, off = self.sizes[e], self.offsets[e]
            iu0, iu1 = self.upper[e]
            x = (b.G[r0:r1] - self.centers[e]) / self.widths[e]  # (R, M)
            energy[off] = r1 - r0
            energy[off + 1 : off + 1 + M] = x.sum(0)
            energy[off + 1 + M : off + 1 + M + len(iu0)] = (x[:, iu0] * x[:, iu1]).sum(0)
            p0, p1 = int(data.pair_offsets[e][s]), int(data.pair_offsets[e][s + 1])
            if p1 == p0:
                continue
            K = len(iu0)
            dx = b.dG_dr[p0:p1].to(DTYPE) / self.widths[e].view(1, M, 1)  # (P, M, 3)
            row = b.pair_center[p0:p1] - r0  # centre row of each entry, local
            neigh = b.pair_neighbor[p0:p1] - a0
            # Centre side: Σ_{p of i} ∂φ(x_i)/∂r_p, from the summed Jacobian.
            dc = torch.zeros((r1 - r0, M, 3), dtype=DTYPE).index_add_(0, row, dx)  # (R, M, 3)
            # Neighbour side: T[j, μ, ν, c] = Σ_{p with neighbour j} x_centre(p),μ dx_p,νc, as one
            # batched product over the entries of each neighbour (padded), so that the
            # per-entry outer products (P × M² × 3) are never stored.
            order = torch.argsort(neigh, stable=True)
            counts = torch.bincount(neigh, minlength=N)
            starts = torch.cumsum(counts, 0) - counts
            slot = torch.arange(p1 - p0) - starts[neigh[order]]
            width = int(counts.max())
            xpad = torch.zeros((N, width, M), dtype=DTYPE)
            xpad[neigh[order], slot] = x[row[order]]
            dpad = torch.zeros((N, width, 3 * M), dtype=DTYPE)
            dpad[neigh[order], slot] = dx[order].reshape(-1, 3 * M)
            T = torch.bmm(xpad.transpose(1, 2), dpad).view(N, M, M, 3)
            S = -T
            atoms = b.atom[r0:r1] - a0
            S[atoms] += x[:, :, None, None] * dc[:, None, :, :]
            lin = torch.zeros((N, M, 3), dtype=DTYPE)
            lin[atoms] += dc
            lin.index_add_(0, neigh, -dx)
            quad = S[:, iu0, iu1, :] + S[:, iu1, iu0, :]  # (N, K, 3): ∂(x_μ x_ν) = x_μ dx_ν + x_ν dx_μ
            forces[:, :, off + 1 : off + 1 + M] += lin.transpose(1, 2)
            forces[:, :, off + 1 + M : off + 1 + M + K] += quad.transpose(1, 2)
            if virial is not None:
                # R_i[a, ν, b] = Σ_{p of i} r_p,a dx_p,νb;  W −= Σ_p r_p ⊗ ∂φ/∂r_p
                R = torch.zeros((r1 - r0, 3, M, 3), dtype=DTYPE).index_add_(
                    0, row, b.pair_vector[p0:p1, :, None, None] * dx[:, None, :, :])
                virial[:, :, off + 1 : off + 1 + M] -= R.sum(0).permute(0, 2, 1)
                VQ = torch.einsum("im,ianb->abmn", x, R)  # Σ_i x_iμ R_i[a, ν, b]
                virial[:, :, off + 1 + M : off + 1 + M + K] -= VQ[:, :, iu0, iu1] + VQ[:, :, iu1, iu0]
        return energy, forces.reshape(3 * N, D), (virial[VOIGT_I, VOIGT_J] if virial is not None else None)


def fit(
    data: FeaturizedDataset,
    indices: Sequence[int],
    centers: dict[str, torch.Tensor],
    widths: dict[str, torch.Tensor],
    energy_weight: float,
    force_weight: float,
    stress_weight: float,
    ridge: float,
    baseline=None,
    progress=None,
    reduce=None,
    chain=None,
) -> QuadraticFit:
    """The (e0, Q) per element that minimise the training loss over the
    structures `indices`, plus ridge · mean(diag) · |θ|² on the non-constant
    coefficients θ (relative, so it does not depend on the units of the loss).

    `centers`, `widths`: the descriptor scaling per element (the model's).
    `baseline(batch)`, when given, returns the energy, forces and virial of
    fixed terms (the repulsive core), which are subtracted from the labels.
    `progress(done, total)`, when given, is called after each structure.
    Shards of the data (nnp.train.distributed) each fit their own
    `indices` (consecutive runs of the structures, in order): `reduce(op,
    tensor)` sums the counts, and `chain.receive(normal, rhs)` gives the
    sums of the shards before, `chain.send(normal, rhs)` passes them on and
    leaves the total in them, so that every shard solves the one process's
    system, bit for bit.
    """
    if ridge < 0 or not math.isfinite(ridge):
        raise ValueError("ridge must be >= 0")
    idx = np.asarray(indices, dtype=np.int64)
    design = _Design(data, {e: centers[e].to(DTYPE) for e in data.elements},
                     {e: widths[e].to(DTYPE) for e in data.elements})
    stress_ok = torch.isfinite(data.stress[:, 0, 0]) & torch.isfinite(data.volume)
    counts = [len(idx), 3 * int(data.n_atoms[torch.as_tensor(idx)].sum()), 6 * int(stress_ok[torch.as_tensor(idx)].sum())]
    if reduce is not None:
        counts = [int(round(x)) for x in reduce("sum", torch.tensor(counts, dtype=DTYPE)).tolist()]
    loss = _Loss(energy_weight, force_weight, stress_weight, *counts)
    equations = _NormalEquations(design.n_columns)
    if chain is not None:
        chain.receive(equations.normal, equations.rhs)  # the sums of the shards before this one
    for done, s in enumerate(idx, 1):
        s = int(s)
        _add_structure(equations, design, s, bool(stress_ok[s]), loss, baseline)
        equations.structure_done()
        if progress is not None:
            progress(done, len(idx))
    if chain is not None:
        chain.send(equations.normal, equations.rhs)  # on to the next shard; the total ends on every one
    equations.symmetrised()
    return _solve(equations, design, ridge)


@dataclass
class _Loss:
    """The weights of the training loss and the counts that normalise its terms."""

    energy_weight: float
    force_weight: float
    stress_weight: float
    n_structures: int
    n_force: int
    n_stress: int


class _NormalEquations:
    """XᵀX and Xᵀy of the weighted design matrix (√weight · row), one
    product per structure added in structure order. Per structure, not per
    block of rows, so that the sums are the same, bit for bit, whoever adds
    which structures (the ranks of nnp.train.distributed, one after the
    other): the solve is ill-conditioned (docstring), and float64 sums in
    another order change its coefficients by ~1e-5 relative."""

    def __init__(self, n_columns: int):
        # Fortran order: BLAS adds each product in place (upper triangle only until `symmetrised`).
        self.normal = np.zeros((n_columns, n_columns), order="F")
        self.rhs = np.zeros(n_columns)
        self._rows: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def add(self, rows: torch.Tensor, targets: torch.Tensor) -> None:
        self._rows.append(rows)
        self._targets.append(targets)

    def structure_done(self) -> None:
        if not self._rows:
            return
        X = torch.cat(self._rows).numpy()
        y = torch.cat(self._targets).numpy()
        # normal += XᵀX (dsyrk, upper triangle) and rhs += Xᵀy in place: no
        # temporary D × D product, half its arithmetic.
        self.normal = blas.dsyrk(1.0, X.T, beta=1.0, c=self.normal, trans=0, lower=0, overwrite_c=1)
        self.rhs = blas.dgemv(1.0, X.T, y, beta=1.0, y=self.rhs, overwrite_y=1)
        self._rows.clear()
        self._targets.clear()

    def symmetrised(self) -> None:
        """The lower triangle from the upper (once, after the last structure)."""
        lower = np.tril_indices(self.normal.shape[0], -1)
        self.normal[lower] = self.normal.T[lower]


def _add_structure(equations: _NormalEquations, design: _Design, s: int, stress_ok: bool, loss: _Loss,
                   baseline) -> None:
    """The weighted rows and targets of structure s: its energy per atom,
    force components and (with a stress label) virial per atom."""
    data = design.data
    N = int(data.n_atoms[s])
    with_virial = stress_ok and loss.stress_weight > 0 and loss.n_stress > 0
    e_row, f_rows, w_rows = design.rows(s, with_virial)
    a0, a1 = int(data.atom_offsets[s]), int(data.atom_offsets[s + 1])
    energy = data.energy[s].to(DTYPE)
    forces = data.forces[a0:a1].to(DTYPE).reshape(-1)
    virial = None
    if with_virial:
        virial = (-data.stress[s] * data.volume[s]).to(DTYPE)[VOIGT_I, VOIGT_J]
    if baseline is not None:
        base = baseline(data.collate([s]))
        energy = energy - base["energy"][0]
        forces = forces - base["forces"].reshape(-1)
        if with_virial:
            virial = virial - base["virial"][0][VOIGT_I, VOIGT_J]
    if math.isfinite(float(energy)) and loss.energy_weight > 0:
        w = math.sqrt(loss.energy_weight / loss.n_structures) / N  # per-atom energy
        equations.add(w * e_row[None], w * energy.view(1))
    if loss.force_weight > 0 and loss.n_force:
        w = math.sqrt(loss.force_weight / loss.n_force)
        equations.add(w * f_rows, w * forces)
    if virial is not None:
        w = math.sqrt(loss.stress_weight / loss.n_stress) / N  # per-atom virial
        equations.add(w * w_rows, w * virial)


def _solve(equations: _NormalEquations, design: _Design, ridge: float) -> QuadraticFit:
    """θ of the ridge-regularised normal equations, as (e0, Q) per element."""
    D = design.n_columns
    normal = torch.from_numpy(equations.normal)
    rhs = torch.from_numpy(equations.rhs)
    constant_cols = [design.offsets[e] for e in design.elements]
    penalised = torch.ones(D, dtype=torch.bool)
    penalised[constant_cols] = False
    diag = torch.diagonal(normal)
    scale = float(diag[penalised].mean()) if bool(penalised.any()) else 0.0
    # Columns no structure touches (an element absent from the training set)
    # get a unit diagonal, so that they solve to 0.
    untouched = diag == 0
    reg = torch.where(penalised, torch.full((D,), ridge * scale, dtype=DTYPE), torch.zeros(D, dtype=DTYPE))
    reg = reg + untouched.to(DTYPE)
    theta = _solved_as_they_are(normal + torch.diag(reg), rhs)
    if theta is None:
        # Numerically singular (module docstring): the constants are penalised
        # too, relative to their own mean diagonal (one value for all, so that
        # an undetermined split follows the composition, as lstsq's does), and
        # what the data still leave undetermined solves to 0.
        touched = ~penalised & ~untouched
        constant_scale = float(diag[touched].mean()) if bool(touched.any()) else 0.0
        reg = torch.where(penalised, torch.full((D,), ridge * scale, dtype=DTYPE),
                          torch.full((D,), ridge * constant_scale, dtype=DTYPE)) + untouched.to(DTYPE)
        theta = pseudo_inverse_solve((normal + torch.diag(reg)).numpy(), equations.rhs)
    constants, terms = {}, {}
    for e in design.elements:
        off, M = design.offsets[e], design.sizes[e]
        constants[e] = float(theta[off])
        terms[e] = terms_from_coefficients(theta[off + 1 : off + 1 + M + M * (M + 1) // 2], M)
    return QuadraticFit(constants, terms)


def _solved_as_they_are(system: torch.Tensor, rhs: torch.Tensor) -> np.ndarray | None:
    """torch.linalg.solve's θ when `system` is numerically regular, else None."""
    if not well_conditioned(system.numpy()):
        return None
    try:
        theta = torch.linalg.solve(system, rhs).numpy()
    except RuntimeError:  # torch.linalg.LinAlgError: an exactly zero pivot
        return None
    return theta if np.isfinite(theta).all() else None


def _equilibrated(system: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(D^-1/2 S D^-1/2, D^-1/2) with D = diag(S): unit diagonal, so that the
    condition number does not depend on the units of the columns."""
    d = np.diagonal(system)
    inv_sqrt = 1.0 / np.sqrt(np.where(d > 0, d, 1.0))
    return system * inv_sqrt[:, None] * inv_sqrt[None, :], inv_sqrt


def well_conditioned(system: np.ndarray) -> bool:
    """Whether the symmetric `system` is positive definite with a reciprocal
    condition number of at least RCOND (LAPACK's estimate, dpocon, after
    equilibration): a Cholesky factorisation, far cheaper than the solve."""
    if not np.isfinite(system).all() or (np.diagonal(system) <= 0).any():
        return False
    scaled, _ = _equilibrated(system)
    factor, info = lapack.dpotrf(scaled, lower=False, clean=False, overwrite_a=False)
    if info != 0:
        return False
    rcond, info = lapack.dpocon(factor, np.abs(scaled).sum(0).max())  # upper factor, as dpotrf gave
    return info == 0 and rcond >= RCOND


def pseudo_inverse_solve(system: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The minimum-norm least-squares θ of system · θ = rhs (in equilibrated
    columns): eigen-directions below RCOND × the largest eigenvalue (what
    the data and the ridge leave undetermined) solve to 0."""
    if not (np.isfinite(system).all() and np.isfinite(rhs).all()):
        raise ValueError("the quadratic fit's normal equations are not finite (a non-finite force or descriptor "
                         "value in the training data?)")
    scaled, inv_sqrt = _equilibrated(system)
    values, vectors = np.linalg.eigh(scaled)
    keep = values > RCOND * max(float(values[-1]), 0.0)
    b = rhs * inv_sqrt
    theta = vectors[:, keep] @ ((vectors[:, keep].T @ b) / values[keep])
    return theta * inv_sqrt


def core_baseline(model: NNPModel):
    """The repulsive core of `model` alone, as `fit` wants its `baseline`
    (a function of a batch: energy, forces, virial), or None without a core."""
    if not model.repulsion:
        return None
    core = NNPModel(model.descriptors, architectures={
        e: ([lin.weight.shape[0] for lin in model.nets[e].linears], list(model.nets[e].activations))
        for e in model.elements}, repulsion=model.repulsion)
    with torch.no_grad():
        for p in core.parameters():
            p.zero_()  # the networks give 0, e0 is 0: only the core is left
    return lambda batch: {k: v.detach() for k, v in core(batch, forces=True, stress=True).items()}


def blend(model: NNPModel, fitted: QuadraticFit, weight: float) -> NNPModel:
    """The potential E_i = (1 − w)(e0 + NN(x)) + w (c + Q(x)): `model`'s
    network and the fitted quadratic model averaged with weight w on the
    latter, as one model (the network's output layer scaled by 1 − w, its
    reference energy mixed with Q's constant)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the weight of the quadratic term must be in [0, 1], got {weight}")
    pot = model.to_potential_data()
    for e, m in pot.models.items():
        if m.quadratic is not None:
            raise ValueError(f"element {e} has a quadratic term already")
        last = m.layers[-1]
        last.weights = (1.0 - weight) * last.weights
        last.biases = (1.0 - weight) * last.biases
        m.reference_energy = (1.0 - weight) * m.reference_energy + weight * fitted.constants[e]
        m.quadratic = QuadraticTerm(weight * fitted.terms[e].linear, weight * fitted.terms[e].matrix)
    return NNPModel.from_potential_data(pot)
