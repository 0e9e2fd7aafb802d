"""The sparse GP's closed-form fit to energies, forces and virials.

GAP's projected-process (subset-of-regressors) formulation (Bartók & Csányi,
Int. J. Quantum Chem. 115, 1051 (2015)): every label y_n is a linear
function of the atomic energies, so with E_i = Σ_m α_m k(x_i, z_m) it is a
row of the design matrix K_NM times α,

    energy per atom  (1/N) Σ_i k(x_i, z_m)
    force F_k        −Σ_i Σ_μ ∂k(x_i, z_m)/∂x_iμ · ∂x_iμ/∂r_k
    virial per atom  −(1/N) Σ_p r_p ⊗ ∂k(x_i(p), z_m)/∂r_p

and α minimises |Σ^{-1/2}(y − K_NM α)|² + αᵀ K_MM α, Σ = diag(σ_E², σ_F², σ_V²)
per row. Solved as GAP does, without normal equations: the least-squares
problem of the stacked matrix [Σ^{-1/2} K_NM; Lᵀ] (K_MM + jitter δ² I = L Lᵀ)
by a QR factorisation. The force rows use the stored descriptor Jacobian
dG_dr of the training set, with the same conventions as the quadratic fit
(nnp.model.quadratic): for a neighbour entry p (centre i, r_ij = r_j − r_i),
g = ∂k(x_i)/∂r_ij enters F_i with + and F_j with −.

The labels are those of the network's loss minus a prior mean
(`prior_mean`): the repulsive core and the reference energies e0 (the
network's, nnp.train.initial_model), so the GP learns what the network
would, or with gp_mean "quadratic" also the quadratic model of
nnp.model.quadratic fitted first, so the GP learns what that misses.

Memory: the stacked matrix, (rows + M) × (M + 1) doubles, rows = Σ_s
(1 + 3 N_s + 6) over the training structures; `estimate_bytes` is checked
against the budget before anything is featurised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import LinAlgError, cholesky, qr, solve_triangular
from scipy.sparse import csr_matrix

from nnp.constants import VOIGT_I, VOIGT_J
from nnp.data import FeaturizedDataset
from nnp.io.potential_file import GaussianProcess
from nnp.model.gp import KernelSpec, cur_points, farthest_points, kernel_matrix, kernel_rows
from nnp.model.network import NNPModel
from nnp.model.quadratic import QuadraticFit
from nnp.train.config import TrainConfig

PAIR_CHUNK_BYTES = 2**26  # one (pairs, 3, M) temporary of the force rows


# The plain sum of the parts fell 5 % short of the peak measured on the Si
# split (M = 500: 1.39 GiB estimated, 1.46 GiB peak RSS; docs/gp.md).
MEMORY_MARGIN = 1.2


def pair_chunk(n_sparse: int) -> int:
    """Neighbour entries per chunk of the force rows: temporaries of ~64 MiB."""
    return max(64, PAIR_CHUNK_BYTES // (24 * n_sparse))


@dataclass(frozen=True)
class GPSettings:
    """The GP settings of a TrainConfig (gp_* keys)."""

    kernel: KernelSpec
    n_sparse: int  # per element
    sigma_energy: float  # eV/atom
    sigma_force: float  # eV/Å
    sigma_virial: float  # eV/atom
    jitter: float  # relative to δ²
    selection: str = "farthest"  # or "cur" (nnp.model.gp.SELECTIONS)

    @classmethod
    def of(cls, config: TrainConfig) -> "GPSettings":
        return cls(KernelSpec(config.gp_kernel, config.gp_delta, config.gp_lengthscale, config.gp_zeta),
                   config.gp_sparse, config.gp_sigma_energy, config.gp_sigma_force, config.gp_sigma_virial,
                   config.gp_jitter, config.gp_selection)


@dataclass
class GPFit:
    """The fitted GP per element (reference energies are the model's)."""

    processes: dict[str, GaussianProcess]
    n_rows: int
    seconds: float


def count_rows(n_atoms: np.ndarray, with_virial: np.ndarray) -> int:
    """Design rows of structures with these atom counts (energy, 3N forces, 6 virials where labelled)."""
    return int(len(n_atoms) + 3 * np.sum(n_atoms) + 6 * np.count_nonzero(with_virial))


def estimate_bytes(n_rows: int, n_columns: int) -> float:
    """Bytes the fit holds at once: the stacked matrix (QR in place, plus
    LAPACK's workspace of a few columns) and the per-chunk temporaries (three
    of PAIR_CHUNK_BYTES)."""
    return 8.0 * (n_rows + n_columns) * (n_columns + 1) + 3 * PAIR_CHUNK_BYTES


def check_memory(n_rows: int, n_elements: int, n_sparse: int, budget: float, budget_name: str,
                 data_bytes: float = 0.0) -> float:
    """The peak estimate for M = n_sparse per element: the featurised data
    (`data_bytes`) and the fit; ValueError, one line naming the largest
    gp_sparse that fits, when it exceeds the budget."""
    need = MEMORY_MARGIN * (data_bytes + estimate_bytes(n_rows, n_elements * n_sparse))
    if need <= budget:
        return need
    fits = 0  # the largest gp_sparse within the budget (bisection; the estimate grows with M)
    lo, hi = 1, n_sparse
    while lo <= hi:
        mid = (lo + hi) // 2
        if MEMORY_MARGIN * (data_bytes + estimate_bytes(n_rows, n_elements * mid)) <= budget:
            fits, lo = mid, mid + 1
        else:
            hi = mid - 1
    C = n_elements * n_sparse
    raise ValueError(
        f"the GP fit needs about {need / 2**30:.2f} GiB (the featurised data {data_bytes / 2**30:.2f} GiB and a "
        f"{n_rows + C} x {C + 1} matrix: {n_rows} label rows, {n_elements} x {n_sparse} sparse points) but the "
        f"budget is {budget / 2**30:.2f} GiB ({budget_name}): "
        + (f"gp_sparse {fits} would fit, or raise memory_budget" if fits else
           "use fewer training structures or raise memory_budget"))


def scaled(data: FeaturizedDataset, model: NNPModel, e: str, rows: slice | np.ndarray) -> np.ndarray:
    """x = (G − center)/width of element e's descriptor rows (the network's input)."""
    center, width = (t.detach().numpy() for t in model.scaling(e)[:2])
    return (data.blocks[e].G[rows].numpy() - center) / width


def select_sparse(data: FeaturizedDataset, model: NNPModel, indices: np.ndarray, settings: "GPSettings"
                  ) -> dict[str, np.ndarray]:
    """settings.n_sparse sparse points per element (scaled descriptors of
    training atoms), by farthest-point sampling or CUR (settings.selection)."""
    keep = np.zeros(len(data), dtype=bool)
    keep[indices] = True
    out = {}
    for e in data.elements:
        rows = np.flatnonzero(keep[data.blocks[e].row_struct.numpy()])
        if len(rows) == 0:
            raise ValueError(f"element {e} has no atoms in the training structures: the GP cannot be fitted")
        x = scaled(data, model, e, rows)
        if settings.n_sparse > len(x):
            raise ValueError(f"gp_sparse {settings.n_sparse} exceeds the {len(x)} {e} atoms of the training "
                             "structures")
        pick = (cur_points(settings.kernel, x, settings.n_sparse) if settings.selection == "cur"
                else farthest_points(x, settings.n_sparse))
        out[e] = x[pick]
    return out


class Design:
    """Unweighted design rows of single structures for given sparse points."""

    def __init__(self, data: FeaturizedDataset, model: NNPModel, sparse: dict[str, np.ndarray], kernel: KernelSpec):
        self.data, self.model, self.sparse, self.kernel = data, model, sparse, kernel
        self.offsets, col = {}, 0
        for e in data.elements:
            self.offsets[e] = col
            col += len(sparse[e])
        self.n_columns = col
        self.widths = {e: model.scaling(e)[1].detach().numpy() for e in data.elements}

    def rows(self, s: int, with_virial: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(energy row Σ_i k (C,), force rows (3N, C), virial rows (6, C) or None) of structure s."""
        data = self.data
        N = int(data.n_atoms[s])
        C = self.n_columns
        energy = np.zeros(C)
        forces = np.zeros((3 * N, C))  # row 3n + c: F_n,c
        virial = np.zeros((6, C)) if with_virial else None
        for e in data.elements:
            r0, r1 = int(data.row_offsets[e][s]), int(data.row_offsets[e][s + 1])
            if r1 == r0:
                continue
            off, M = self.offsets[e], len(self.sparse[e])
            kr = kernel_rows(self.kernel, scaled(data, self.model, e, slice(r0, r1)), self.sparse[e])
            energy[off : off + M] = kr.K.sum(0)
            f, w = self._pair_rows(e, s, r0, N, kr, with_virial)
            forces[:, off : off + M] = f.reshape(3 * N, M).numpy()
            if virial is not None:
                virial[:, off : off + M] = w[VOIGT_I, VOIGT_J].numpy()
        return energy, forces, virial

    def _pair_rows(self, e: str, s: int, r0: int, N: int, kr, with_virial: bool):
        """The neighbour entries' ∂k/∂r_ij of element e in structure s summed
        into forces (N, 3, M) and the virial (3, 3, M), chunk by chunk."""
        data = self.data
        b = data.blocks[e]
        M = kr.K.shape[1]
        a0 = int(data.atom_offsets[s])
        p0, p1 = int(data.pair_offsets[e][s]), int(data.pair_offsets[e][s + 1])
        w = torch.from_numpy(kr.w)  # (M, D)
        y, ka, kb = (torch.from_numpy(v) for v in (kr.y, kr.a, kr.b))
        inv_width = torch.from_numpy(1.0 / self.widths[e]).view(1, -1, 1)
        forces = torch.zeros((N, 3, M), dtype=torch.float64)
        virial = torch.zeros((3, 3 * M), dtype=torch.float64)
        step = pair_chunk(M)
        for q0 in range(p0, p1, step):
            q1 = min(q0 + step, p1)
            dx = (b.dG_dr[q0:q1].to(torch.float64) * inv_width).transpose(1, 2)  # (P, 3, D): ∂x_i/∂r_ij
            P = q1 - q0
            row = b.pair_center[q0:q1] - r0
            # g[p, c, m] = a[i, m] (w_m · dx_pc) + b[i, m] (y_i · dx_pc)
            g = torch.matmul(dx.reshape(3 * P, -1), w.T).view(P, 3, M) * ka[row].unsqueeze(1)
            g += torch.einsum("pd,pcd->pc", y[row], dx).unsqueeze(2) * kb[row].unsqueeze(1)
            # F_i += g_p (centre), F_j −= g_p (neighbour): one sparse (N, P) product.
            centre, neighbour = (b.atom[b.pair_center[q0:q1]] - a0).numpy(), (b.pair_neighbor[q0:q1] - a0).numpy()
            scatter = csr_matrix((np.repeat([1.0, -1.0], P), (np.concatenate([centre, neighbour]),
                                                               np.tile(np.arange(P), 2))), shape=(N, P))
            forces += torch.from_numpy(scatter @ g.reshape(P, 3 * M).numpy()).view(N, 3, M)
            if with_virial:  # W = −Σ_p r_p ⊗ g_p
                virial -= b.pair_vector[q0:q1].to(torch.float64).T @ g.reshape(P, 3 * M)
        return forces, virial.view(3, 3, M)


def prior_mean(model: NNPModel, quadratic: QuadraticFit | None = None) -> NNPModel:
    """The GP's prior mean as a model: `model`'s scaling, reference energies
    and core, its networks zero, and with `quadratic` its constants (as e0)
    and quadratic terms; the GP learns the labels minus this model."""
    pot = model.to_potential_data()
    for e, m in pot.models.items():
        for layer in m.layers:
            layer.weights, layer.biases = 0.0 * layer.weights, 0.0 * layer.biases
        if quadratic is not None:
            m.reference_energy, m.quadratic = quadratic.constants[e], quadratic.terms[e]
    return NNPModel.from_potential_data(pot)


def _targets(data: FeaturizedDataset, s: int, mean: NNPModel, with_virial: bool):
    """(energy, forces (3N,), virial (6,) or None): labels minus the prior mean."""
    a0, a1 = int(data.atom_offsets[s]), int(data.atom_offsets[s + 1])
    base = {k: v.detach() for k, v in mean(data.collate([s]), forces=True, stress=with_virial).items()}
    energy = float(data.energy[s]) - float(base["energy"][0])
    forces = (data.forces[a0:a1].to(torch.float64) - base["forces"]).reshape(-1).numpy()
    virial = None
    if with_virial:
        virial = ((-data.stress[s] * data.volume[s]).to(torch.float64) - base["virial"][0])[VOIGT_I, VOIGT_J].numpy()
    return energy, forces, virial


def _with_virial(data: FeaturizedDataset, settings: GPSettings) -> np.ndarray:
    ok = torch.isfinite(data.stress[:, 0, 0]) & torch.isfinite(data.volume)
    return ok.numpy() & (settings.sigma_virial > 0)


def fit(data: FeaturizedDataset, indices, model: NNPModel, settings: GPSettings) -> GPFit:
    """The GP per element fitted to the structures `indices`, in `model`'s
    scaling, to the labels minus `model` (the prior mean: its networks are
    used as they are, so give prior_mean(...) for e0 and the core alone)."""
    t = time.perf_counter()
    idx = np.asarray(indices, dtype=np.int64)
    sparse = select_sparse(data, model, idx, settings)
    design = Design(data, model, sparse, settings.kernel)
    virial_ok = _with_virial(data, settings)
    energy_ok = np.isfinite(data.energy.numpy())
    n_rows = int(np.count_nonzero(energy_ok[idx]) + 3 * data.n_atoms[idx].sum() + 6 * np.count_nonzero(virial_ok[idx]))
    C = design.n_columns
    A = np.zeros((n_rows + C, C + 1), order="F")  # last column: the weighted labels
    r = 0
    for s in idx:
        s = int(s)
        N = int(data.n_atoms[s])
        e_row, f_rows, v_rows = design.rows(s, bool(virial_ok[s]))
        energy, forces, virial = _targets(data, s, model, bool(virial_ok[s]))
        if energy_ok[s]:
            A[r, :C], A[r, C] = e_row / (N * settings.sigma_energy), energy / (N * settings.sigma_energy)
            r += 1
        A[r : r + 3 * N, :C], A[r : r + 3 * N, C] = f_rows / settings.sigma_force, forces / settings.sigma_force
        r += 3 * N
        if v_rows is not None:
            scale = N * settings.sigma_virial
            A[r : r + 6, :C], A[r : r + 6, C] = v_rows / scale, virial / scale
            r += 6
    assert r == n_rows
    for e in data.elements:  # the prior: Lᵀ of K_MM, block-diagonal over elements
        off, M = design.offsets[e], len(sparse[e])
        kmm = kernel_matrix(settings.kernel, sparse[e], sparse[e])
        kmm[np.diag_indices(M)] += settings.jitter * settings.kernel.delta**2
        try:
            A[n_rows + off : n_rows + off + M, off : off + M] = cholesky(kmm, lower=True).T
        except LinAlgError:
            raise ValueError(f"{e}: the kernel matrix of the sparse points is singular to rounding (points "
                             "too close for the lengthscale): raise gp_jitter or lower gp_sparse") from None
    if not np.isfinite(A).all():
        raise ValueError("the GP fit's design matrix is not finite (a non-finite label or descriptor value?)")
    # 'raw' factorises A in place and returns R alone ((C + 1)²); mode 'r'
    # would return R as a copy the size of A.
    (h, _), R = qr(A, mode="raw", overwrite_a=True, check_finite=False)
    del h, A
    alpha = solve_triangular(R[:C, :C], R[:C, C])
    factors = variance_factors(R[:C, :C], design)
    k = settings.kernel
    processes = {}
    for e in data.elements:
        weights = alpha[design.offsets[e] : design.offsets[e] + len(sparse[e])]
        processes[e] = GaussianProcess(k.kernel, k.delta, sparse[e], weights, k.lengthscale, k.zeta,
                                       factors[e], settings.jitter)
    return GPFit(processes, n_rows, time.perf_counter() - t)


def variance_factors(R: np.ndarray, design: Design) -> dict[str, np.ndarray]:
    """Per element the packed factor of its weights' marginal posterior
    precision (what the core's variance needs, docs/gp.md): RᵀR is the
    posterior precision of all weights (AᵀA of the stacked matrix), and the
    trailing block of the triangular factor with element e's columns last is
    R_e with R_eᵀR_e = the inverse of e's block of (RᵀR)⁻¹ (a Schur
    complement). Rows are signed so that the diagonal is positive; each row m
    is packed from its diagonal on."""
    out = {}
    C = R.shape[0]
    for e, off in design.offsets.items():
        M = len(design.sparse[e])
        cols = np.arange(off, off + M)
        Re = R
        if M < C:  # other elements' weights coupled through shared labels: marginalise them
            order = np.concatenate([np.setdiff1d(np.arange(C), cols), cols])
            Re = qr(R[:, order], mode="r", check_finite=False)[0]
        Re = Re[C - M :, C - M :] * np.sign(np.diag(Re[C - M :, C - M :]))[:, None]
        out[e] = np.concatenate([Re[m, m:] for m in range(M)])
    return out
