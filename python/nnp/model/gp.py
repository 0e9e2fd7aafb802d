"""The sparse Gaussian-process atomic energy in numpy: kernels, their
gradients, sparse-point selection and prediction from descriptor rows.

    E_i = e0[Z_i] + Σ_m α_m k(x_i, z_m)

over M sparse points z_m of the scaled descriptor x = (G − center)/width
(the network's input). The kernels are those of the C++ evaluator
(cpp/include/nnp/gaussian_process.h, which evaluates the written file);
this module serves the fit (nnp.train.gp_fit) and the tests:

    se   k(x, z) = δ² exp(−|x − z|² / (2ℓ²))
    dot  k(x, z) = δ² (x̂·ẑ)^ζ,  x̂ = (x, 1)/|(x, 1)|   (GAP's polynomial kernel
         on unit vectors; the appended 1 keeps x = 0 regular)

Both gradients have the form ∂k(x_r, z_m)/∂x_r = a_rm w_m + b_rm y_r, with
(w_m, y_r) = (z_m, x_r) for se and (ẑ_m, x̂_r) (first D entries) for dot,
which lets the fit contract the descriptor Jacobian with the M sparse
points in one matrix product (`KernelRows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnp.io.potential_file import GaussianProcess

KERNELS = ("se", "dot")
SELECTIONS = ("farthest", "cur")  # how sparse points are chosen (farthest_points, cur_points)


@dataclass(frozen=True)
class KernelSpec:
    """A kernel and its hyperparameters (lengthscale: se; zeta: dot)."""

    kernel: str = "se"
    delta: float = 1.0
    lengthscale: float = 1.0
    zeta: int = 1

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown GP kernel {self.kernel!r}; choose from {KERNELS}")
        if not self.delta > 0 or (self.kernel == "se" and not self.lengthscale > 0):
            raise ValueError("the GP's delta and lengthscale must be > 0")
        if self.kernel == "dot" and not 1 <= self.zeta <= 64:
            raise ValueError("the GP's zeta must be an integer in [1, 64]")

    @classmethod
    def of(cls, gp: GaussianProcess) -> "KernelSpec":
        return cls(gp.kernel, float(gp.delta), float(gp.lengthscale), int(gp.zeta))


def _unit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x̂ (n, D + 1), |(x, 1)| (n,)) of the rows of x."""
    ext = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    norm = np.sqrt(1.0 + np.einsum("nd,nd->n", x, x))
    return ext / norm[:, None], norm


@dataclass
class KernelRows:
    """k(x_r, z_m) of R rows and M sparse points, with the gradient factors
    ∂k/∂x_r = a[r, m] w[m] + b[r, m] y[r]:
      K (R, M), a (R, M), b (R, M), w (M, D), y (R, D)."""

    K: np.ndarray
    a: np.ndarray
    b: np.ndarray
    w: np.ndarray
    y: np.ndarray

    def gradient(self) -> np.ndarray:
        """∂k/∂x (R, M, D), for tests and small sizes."""
        return self.a[:, :, None] * self.w[None] + self.b[:, :, None] * self.y[:, None, :]


def kernel_rows(spec: KernelSpec, x: np.ndarray, z: np.ndarray) -> KernelRows:
    """The kernel between rows x (R, D) and sparse points z (M, D)."""
    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    d2 = spec.delta**2
    D = x.shape[1]
    if spec.kernel == "se":
        inv_l2 = 1.0 / spec.lengthscale**2
        sq = np.maximum(np.einsum("rd,rd->r", x, x)[:, None] + np.einsum("md,md->m", z, z)[None] - 2.0 * x @ z.T, 0.0)
        K = d2 * np.exp(-0.5 * sq * inv_l2)
        return KernelRows(K, K * inv_l2, -K * inv_l2, z, x)
    u, nx = _unit(x)
    v, _ = _unit(z)
    s = u @ v.T
    p = s ** (spec.zeta - 1)
    K = d2 * p * s
    c = d2 * spec.zeta * p / nx[:, None]
    return KernelRows(K, c, -c * s, v[:, :D], u[:, :D])


def kernel_matrix(spec: KernelSpec, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """k(x_r, z_m) (R, M)."""
    return kernel_rows(spec, x, z).K


def gp_energies(gp: GaussianProcess, x: np.ndarray) -> np.ndarray:
    """E_GP of every row of the scaled descriptors x (R, D)."""
    return kernel_matrix(KernelSpec.of(gp), x, gp.sparse_points) @ gp.weights


def farthest_points(x: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` rows of x chosen by farthest-point sampling:
    first the row farthest from the mean, then each time the row farthest
    from all chosen so far (deterministic; ties to the lowest index)."""
    x = np.asarray(x, dtype=np.float64)
    if count > len(x):
        raise ValueError(f"cannot choose {count} sparse points from {len(x)} atomic environments")
    chosen = np.empty(count, dtype=np.int64)
    dist = np.einsum("nd,nd->n", x - x.mean(0), x - x.mean(0))
    for k in range(count):
        c = int(np.argmax(dist))
        if k and dist[c] == 0.0:
            raise ValueError(f"cannot choose {count} sparse points: only {k} distinct atomic environments")
        chosen[k] = c
        diff = x - x[c]
        dist = np.minimum(dist, np.einsum("nd,nd->n", diff, diff)) if k else np.einsum("nd,nd->n", diff, diff)
    return chosen


def cur_points(spec: KernelSpec, x: np.ndarray, count: int, block: int = 4096) -> np.ndarray:
    """Indices of `count` rows of x chosen by CUR on the kernel matrix
    K = k(x, x): greedy column-subset selection, each time the row whose
    kernel column has the largest part outside the span of those chosen
    (pivoted Cholesky: the largest residual diagonal K_ii − |L_i|²), so the
    points cover what the kernel can tell apart rather than what is far in
    descriptor space. n × count kernel values are computed, in blocks of
    `block` rows; memory n × count doubles (L)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if count > n:
        raise ValueError(f"cannot choose {count} sparse points from {n} atomic environments")
    L = np.zeros((n, count))
    residual = np.full(n, spec.delta**2)  # k(x, x) = δ² for both kernels
    chosen = np.empty(count, dtype=np.int64)
    tiny = 1e-12 * spec.delta**2
    for k in range(count):
        c = int(np.argmax(residual))
        if residual[c] <= tiny:
            raise ValueError(f"cannot choose {count} sparse points: the kernel matrix of the training "
                             f"environments has rank {k} (duplicate environments)")
        chosen[k] = c
        col = np.concatenate([kernel_matrix(spec, x[s : s + block], x[c : c + 1])[:, 0]
                              for s in range(0, n, block)])
        L[:, k] = (col - L[:, :k] @ L[c, :k]) / np.sqrt(residual[c])
        residual -= L[:, k] ** 2
        residual[chosen[: k + 1]] = -np.inf
    return chosen
