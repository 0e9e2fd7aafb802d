"""Independent, brute-force reference for the symmetry functions (tests only).

Pure torch, float64, written for clarity rather than speed: the neighbour list
comes from ASE (``neighbor_list('ijD')``), every function type is one small
function below with its formula next to it, and ∂G/∂r_ij comes from autograd.
Weighted functions (W2, W4, W5, CW2, CW4, CW5) are summed over neighbours
with their weights directly, not as combinations of element-resolved
functions. The cutoffs are n2p2's (hard, cos, tanh3 = tanhu,
tanh3_normalised, exp, poly1-4, with the inner radius α r_c), the compact
functions (C2, C4, C5) follow Bircher et al. 2021 as n2p2 implements them.
It shares no code with the C++ core, so agreement between the two is evidence
that both follow docs/potential-format.md.

`featurize(descriptor_set, atoms)` returns exactly the layout of
`nnp.descriptors.DescriptorSet.featurize`: per centre element
{"G": (n_e, M), "atoms": (n_e,), "pair_center": (P,), "pair_neighbor": (P,),
"pair_vector": (P, 3), "dG_dr": (P, M, 3)}, with the neighbour entries in
ASE's order (the C++ core may order them differently: compare after sorting).

Notation (Å, Å⁻²): r_ij = r_j − r_i (vector to the periodic image of j),
R_ij = |r_ij|, cosθ_ijk = r̂_ij·r̂_ik, r_jk = r_ik − r_ij.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase.neighborlist import neighbor_list

from nnp.descriptors import C2, C4, C5, CW2, CW4, CW5, G2, G4, G5, W2, W4, W5, DescriptorSet

DTYPE = torch.float64


# ----------------------------------------------------------------- cutoffs


def cutoff_cos(r: torch.Tensor, rc: float, alpha: float = 0.0) -> torch.Tensor:
    """f_c(R) = ½[cos(πx) + 1], x = (R − αR_c)/(R_c − αR_c), 1 below αR_c, 0 beyond R_c."""
    return _inner(r, rc, alpha, lambda x: 0.5 * (torch.cos(math.pi * x) + 1.0))


def cutoff_tanh3(r: torch.Tensor, rc: float, alpha: float = 0.0) -> torch.Tensor:
    """f_c(R) = tanh³(1 − R/R_c) for R < R_c, else 0."""
    return torch.where(r < rc, torch.tanh(1.0 - r / rc) ** 3, torch.zeros_like(r))


def _inner(r: torch.Tensor, rc: float, alpha: float, f) -> torch.Tensor:
    """1 below the inner radius αR_c, f(x) with x = (R − αR_c)/(R_c − αR_c) up to R_c, 0 beyond."""
    rci = alpha * rc
    x = torch.where((r >= rci) & (r < rc), (r - rci) / (rc - rci), torch.zeros_like(r))
    return torch.where(r < rci, torch.ones_like(r), torch.where(r < rc, f(x), torch.zeros_like(r)))


# n2p2's core functions p(x) on [0, 1): p(0) = 1, p(1) = 0.
CORES = {
    "p1": lambda x: (2 * x - 3) * x**2 + 1,
    "p2": lambda x: ((15 - 6 * x) * x - 10) * x**3 + 1,
    "p3": lambda x: (x * (x * (20 * x - 70) + 84) - 35) * x**4 + 1,
    "p4": lambda x: (x * (x * ((315 - 70 * x) * x - 540) + 420) - 126) * x**5 + 1,
    "e": lambda x: math.e * torch.exp(1.0 / (x**2 - 1.0)),
}

CUTOFFS = {
    "cos": cutoff_cos,
    "tanh3": cutoff_tanh3,
    "hard": lambda r, rc, alpha=0.0: torch.where(r < rc, torch.ones_like(r), torch.zeros_like(r)),
    "tanh3_normalised": lambda r, rc, alpha=0.0: cutoff_tanh3(r, rc) / math.tanh(1.0) ** 3,
    "exp": lambda r, rc, alpha=0.0: _inner(r, rc, alpha, CORES["e"]),
    **{f"poly{n}": (lambda r, rc, alpha=0.0, n=n: _inner(r, rc, alpha, CORES[f"p{n}"])) for n in range(1, 5)},
}


def compact_window(a: torch.Tensor, left: float, right: float, core: str) -> torch.Tensor:
    """C(a) = p(|a − c|/h) for left < a < right (c the centre, h the half
    width), else 0; core "pNa": p((2 − y) y) with y = |a − c|/h."""
    inside = (a > left) & (a < right)
    y = torch.where(inside, torch.abs(a - 0.5 * (left + right)) / (0.5 * (right - left)), torch.zeros_like(a))
    if core.endswith("a"):
        y = (2.0 - y) * y
    return torch.where(inside, CORES[core.rstrip("a")](y), torch.zeros_like(a))


# ------------------------------------------------------------- geometry


class Geometry:
    """Pairs and ordered triplets of one structure, as torch tensors.

    Pair p: centre `center[p]`, neighbour element `elem[p]`, vector `vec[p]`
    (the autograd leaf). Triplet t: two *different* pair entries `j[t]`,
    `k[t]` of the same centre (ordered: both (j, k) and (k, j) appear).
    """

    def __init__(self, center: np.ndarray, elem: np.ndarray, vec: torch.Tensor, n_atoms: int):
        self.n_atoms = n_atoms
        self.center = torch.as_tensor(center, dtype=torch.long)
        self.elem = torch.as_tensor(elem, dtype=torch.long)
        self.vec = vec  # (P, 3)
        self.r = torch.linalg.norm(vec, dim=1)  # (P,)
        # Ordered triplets: all (p, q), p != q, with center[p] == center[q].
        js, ks = [], []
        order = np.argsort(center, kind="stable")
        bounds = np.searchsorted(center[order], np.arange(n_atoms + 1))
        for i in range(n_atoms):
            idx = order[bounds[i] : bounds[i + 1]]
            if len(idx) < 2:
                continue
            a, b = np.meshgrid(idx, idx, indexing="ij")
            keep = a != b
            js.append(a[keep])
            ks.append(b[keep])
        self.j = torch.as_tensor(np.concatenate(js) if js else np.zeros(0, int), dtype=torch.long)
        self.k = torch.as_tensor(np.concatenate(ks) if ks else np.zeros(0, int), dtype=torch.long)
        self.t_center = self.center[self.j]
        r_ij, r_ik = vec[self.j], vec[self.k]
        self.R_ij = self.r[self.j]
        self.R_ik = self.r[self.k]
        self.R_jk = torch.linalg.norm(r_ik - r_ij, dim=1)
        self.cos = (r_ij * r_ik).sum(1) / (self.R_ij * self.R_ik)


def _per_centre(values: torch.Tensor, centre: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Σ of `values` over entries with the same centre atom -> (n_atoms,)."""
    return torch.zeros(n_atoms, dtype=DTYPE).index_add(0, centre, values)


# ---------------------------------------------------- symmetry functions


def g2(geo: Geometry, sf: G2, nb: int, fc) -> torch.Tensor:
    """G2_i = Σ_{j of element A} exp(−η (R_ij − R_s)²) f_c(R_ij)."""
    term = torch.exp(-sf.eta * (geo.r - sf.rs) ** 2) * fc(geo.r, sf.rc)
    term = torch.where(geo.elem == nb, term, torch.zeros_like(term))
    return _per_centre(term, geo.center, geo.n_atoms)


def _angular(geo: Geometry, sf, pair: tuple[int, int], fc, angular_sum: str, narrow: bool):
    """Σ over ordered triplets j ≠ k with {elem j, elem k} = {A, B} of
        2^(1−ζ) (1 + λ cosθ_ijk)^ζ exp(−η[(R_ij−R_s)² + (R_ik−R_s)² (+ (R_jk−R_s)²)])
                f_c(R_ij) f_c(R_ik) (f_c(R_jk))
    (R_jk factors only for G4 = narrow). The summand is symmetric in j ↔ k, so
    the ordered sum counts every unordered pair {j, k} exactly twice:
        'full' = ordered sum,   'half' (j < k, Behler 2011) = ordered sum / 2.
    """
    a, b = pair
    ej, ek = geo.elem[geo.j], geo.elem[geo.k]
    match = ((ej == a) & (ek == b)) | ((ej == b) & (ek == a))
    term = _triplet_terms(geo, sf, fc, narrow)
    term = torch.where(match, term, torch.zeros_like(term))
    total = _per_centre(term, geo.t_center, geo.n_atoms)
    return total if angular_sum == "full" else 0.5 * total


def _triplet_terms(geo: Geometry, sf, fc, narrow: bool) -> torch.Tensor:
    """The summand of every ordered triplet (see `_angular`)."""
    radial = (geo.R_ij - sf.rs) ** 2 + (geo.R_ik - sf.rs) ** 2
    cut = fc(geo.R_ij, sf.rc) * fc(geo.R_ik, sf.rc)
    if narrow:
        radial = radial + (geo.R_jk - sf.rs) ** 2
        cut = cut * fc(geo.R_jk, sf.rc)
    return 2.0 ** (1.0 - sf.zeta) * (1.0 + sf.lambda_ * geo.cos) ** sf.zeta * torch.exp(-sf.eta * radial) * cut


def w2(geo: Geometry, sf: W2, weight: torch.Tensor, fc) -> torch.Tensor:
    """W2_i = Σ_j g(j) exp(−η (R_ij − R_s)²) f_c(R_ij) over every neighbour;
    `weight`: g per element index."""
    term = torch.exp(-sf.eta * (geo.r - sf.rs) ** 2) * fc(geo.r, sf.rc) * weight[geo.elem]
    return _per_centre(term, geo.center, geo.n_atoms)


def w_angular(geo: Geometry, sf, weight: torch.Tensor, fc, angular_sum: str) -> torch.Tensor:
    """W4/W5: the G4/G5 summand of every ordered triplet times g(j) g(k),
    summed directly (not through element pairs); 'half' = ordered sum / 2."""
    term = _triplet_terms(geo, sf, fc, narrow=isinstance(sf, W4))
    term = term * weight[geo.elem[geo.j]] * weight[geo.elem[geo.k]]
    total = _per_centre(term, geo.t_center, geo.n_atoms)
    return total if angular_sum == "full" else 0.5 * total


def compact_triplet_terms(geo: Geometry, sf) -> torch.Tensor:
    """C_a(θ) C_r(R_ij) C_r(R_ik) (C_r(R_jk) for C4/CW4) of every ordered
    triplet; 0 for collinear triplets (|cosθ| = 1), as n2p2 skips them."""
    inside = (geo.cos > -1.0) & (geo.cos < 1.0)
    theta = torch.acos(torch.where(inside, geo.cos, torch.zeros_like(geo.cos)))
    # The asymmetric form ("p2a") applies to the radial windows only (as n2p2).
    ang = compact_window(theta, math.radians(sf.angle_left), math.radians(sf.angle_right), sf.core.rstrip("a"))
    rad = compact_window(geo.R_ij, sf.rl, sf.rc, sf.core) * compact_window(geo.R_ik, sf.rl, sf.rc, sf.core)
    if isinstance(sf, (C4, CW4)):
        rad = rad * compact_window(geo.R_jk, sf.rl, sf.rc, sf.core)
    return torch.where(inside, ang * rad, torch.zeros_like(rad))


def compact(geo: Geometry, sf, index: dict[str, int], weight: torch.Tensor, angular_sum: str) -> torch.Tensor:
    """C2/CW2: Σ_j [g(j)] C_r(R_ij); C4, C5, CW4, CW5: the ordered triplet sum
    of the terms above (times g(j) g(k)), halved for the 'half' sum."""
    if isinstance(sf, (C2, CW2)):
        term = compact_window(geo.r, sf.rl, sf.rc, sf.core)
        term = term * weight[geo.elem] if isinstance(sf, CW2) else torch.where(
            geo.elem == index[sf.neighbor], term, torch.zeros_like(term))
        return _per_centre(term, geo.center, geo.n_atoms)
    term = compact_triplet_terms(geo, sf)
    ej, ek = geo.elem[geo.j], geo.elem[geo.k]
    if isinstance(sf, (CW4, CW5)):
        term = term * weight[ej] * weight[ek]
    else:
        a, b = (index[e] for e in sf.neighbors)
        term = torch.where(((ej == a) & (ek == b)) | ((ej == b) & (ek == a)), term, torch.zeros_like(term))
    total = _per_centre(term, geo.t_center, geo.n_atoms)
    return total if angular_sum == "full" else 0.5 * total


def g4(geo: Geometry, sf: G4, pair, fc, angular_sum: str) -> torch.Tensor:
    """G4 (narrow): includes exp(−η(R_jk−R_s)²) f_c(R_jk)."""
    return _angular(geo, sf, pair, fc, angular_sum, narrow=True)


def g5(geo: Geometry, sf: G5, pair, fc, angular_sum: str) -> torch.Tensor:
    """G5 (wide): no R_jk factors."""
    return _angular(geo, sf, pair, fc, angular_sum, narrow=False)


def evaluate_columns(ds: DescriptorSet, geo: Geometry, centre_element: str) -> list[torch.Tensor]:
    """G of every atom for the functions of `centre_element`: M columns of (n_atoms,)."""
    index = {e: n for n, e in enumerate(ds.elements)}
    def fc(r, rc):
        return CUTOFFS[ds.cutoff_function](r, rc, ds.cutoff_alpha)

    cols = []
    for sf in ds.functions[centre_element]:
        if isinstance(sf, (C2, C4, C5, CW2, CW4, CW5)):
            table = dict(getattr(sf, "weights", ()))
            weight = torch.tensor([table.get(e, 0.0) for e in ds.elements], dtype=DTYPE)
            cols.append(compact(geo, sf, index, weight, ds.angular_sum))
        elif isinstance(sf, (W2, W4, W5)):
            table = dict(sf.weights)
            weight = torch.tensor([table[e] for e in ds.elements], dtype=DTYPE)
            cols.append(w2(geo, sf, weight, fc) if isinstance(sf, W2) else w_angular(geo, sf, weight, fc,
                                                                                     ds.angular_sum))
        elif isinstance(sf, G2):
            cols.append(g2(geo, sf, index[sf.neighbor], fc))
        else:
            pair = tuple(index[e] for e in sf.neighbors)
            fn = g4 if isinstance(sf, G4) else g5
            cols.append(fn(geo, sf, pair, fc, ds.angular_sum))
    return cols


# ------------------------------------------------------------- featurize


def featurize(ds: DescriptorSet, atoms, derivatives: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Same contract as `DescriptorSet.featurize` (see module docstring)."""
    symbols = atoms.get_chemical_symbols()
    elem_of_atom = ds.element_indices(symbols).astype(np.int64)
    i, j, D = neighbor_list("ijD", atoms, ds.cutoff)  # all images with R < cutoff
    vec = torch.tensor(D, dtype=DTYPE, requires_grad=derivatives)
    geo = Geometry(i, elem_of_atom[j], vec, len(atoms))
    out = {}
    for n, e in enumerate(ds.elements):
        rows = np.flatnonzero(elem_of_atom == n)
        rows_t = torch.as_tensor(rows, dtype=torch.long)
        cols = evaluate_columns(ds, geo, e)  # M × (n_atoms,)
        G = torch.stack([c.detach()[rows_t] for c in cols], dim=1)  # (n_e, M)
        feat = {"G": G.numpy().copy(), "atoms": rows.astype(np.int64)}
        if derivatives:
            # Pairs whose centre has element e; row of G of each centre.
            row_of_atom = np.full(len(atoms), -1, dtype=np.int64)
            row_of_atom[rows] = np.arange(len(rows))
            pairs = np.flatnonzero(elem_of_atom[i] == n)
            dG = np.zeros((len(pairs), len(cols), 3))  # (P_e, M, 3)
            for mu, col in enumerate(cols):
                # r_ij only enters G_i, so ∂(Σ_i G_iμ)/∂r_p = ∂G_{centre(p)μ}/∂r_p.
                if len(rows) and col.requires_grad:
                    (grad,) = torch.autograd.grad(col[rows_t].sum(), vec, retain_graph=True)
                    dG[:, mu, :] = grad.numpy()[pairs]
            feat.update(
                pair_center=row_of_atom[i[pairs]],
                pair_neighbor=j[pairs].astype(np.int64),
                pair_vector=D[pairs].copy(),
                dG_dr=dG,
            )
        out[e] = feat
    return out
