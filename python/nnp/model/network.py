"""The trainable Behler–Parrinello model in PyTorch (float64).

    E = Σ_i E_i,   E_i = e0[Z_i] + NN_{Z_i}(x_i),   x_i = (G_i − center)/width

Forces and virial come from the descriptor Jacobian, precomputed (stored) or
applied by the core without storing it (streamed batches: its force pass,
and its Jacobian-vector product for the backward pass); no autograd runs
through descriptor code. With dE/dG from autograd through the networks,
each neighbour entry p = (i → j, vector r_ij) gives

    v_p = ∂E_i/∂r_ij = Σ_μ (∂E_i/∂G_iμ) (∂G_iμ/∂r_ij)                 (3,)
    F_i += v_p,  F_j −= v_p           (F = −∂E/∂r, since r_ij = r_j − r_i)
    W   = −Σ_p r_ij ⊗ v_p             (virial, eV; the LAMMPS convention)
    σ   = −W/V                        (stress, eV/Å³, ASE: tension positive)

the same conventions as cpp/include/nnp/structure.h.

An optional repulsive core (ZBL screened Coulomb, switched off between
r_inner and r_outer; docs/potential-format.md) has no trainable parameters.
Like the C++ core, it gives each neighbour entry p half of its pair:
E_i += ½ E_rep(|r_p|) and v_p += ½ E_rep'(|r_p|) r̂_p (every unordered pair
appears twice among the entries), then enters forces and virial as above.

The model converts exactly to and from `nnp.io.potential_file.PotentialData`:
the weights written are the weights used.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from nnp import _core
from nnp.data import Batch, FeaturizedDataset
from nnp.descriptors import DescriptorSet
from nnp._core import atomic_number
from nnp.io.potential_file import ElementModel, Layer, PotentialData, QuadraticTerm, Repulsion, Scaling

DTYPE = torch.float64
ACTIVATIONS = ("tanh", "sigmoid", "softplus", "silu", "linear")
SCALING_MODES = ("standard", "minmax")
# Width floor, relative to the largest |G| of the function (and absolute), so
# near-constant functions are not blown up into noise.
WIDTH_FLOOR_RELATIVE = 1e-3
WIDTH_FLOOR_ABSOLUTE = 1e-8

# Universal ZBL screening function and constants, as in cpp/src/repulsion.cpp.
ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)
COULOMB = 14.399645  # e²/(4πε0), eV·Å
BOHR = 0.529177  # Å


def zbl_energy(z_a: float, z_b: float, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unswitched ZBL pair energy (eV) at distances r (Å) and dE/dr."""
    a = 0.8854 * BOHR / (z_a**0.23 + z_b**0.23)
    x = r / a
    phi = torch.zeros_like(r)
    dphi = torch.zeros_like(r)
    for c, d in zip(ZBL_C, ZBL_D):
        t = c * torch.exp(-d * x)
        phi = phi + t
        dphi = dphi - d * t
    q = COULOMB * z_a * z_b
    return q * phi / r, q * (dphi / (a * r) - phi / (r * r))


def repulsion_switch(r: torch.Tensor, r_inner: float, r_outer: float) -> tuple[torch.Tensor, torch.Tensor]:
    """S(r) = 1 − (10x³ − 15x⁴ + 6x⁵), x = (r − r_inner)/(r_outer − r_inner)
    clamped to [0, 1], and dS/dr (C2 at both ends)."""
    h = r_outer - r_inner
    x = ((r - r_inner) / h).clamp(0.0, 1.0)
    x2 = x * x
    return 1.0 - x2 * x * (10.0 - 15.0 * x + 6.0 * x2), -30.0 * x2 * (1.0 - x) * (1.0 - x) / h


class _PairContraction(torch.autograd.Function):
    """v_p = Σ_μ g[centre(p), μ] · dG_dr[p, μ, :] and its adjoint through the
    fused C++ loops of nnp._core (CPU; g float64, dG_dr float64 or float32):
    one pass over dG_dr each way.
    Gathering g per pair and a batched matmul, the torch way, made half of
    every training step. Once differentiable: training needs the gradient
    of a loss on v, not of that gradient."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, dG_dr: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        dG_dr, center = dG_dr.detach().contiguous(), center.contiguous()
        ctx.save_for_backward(dG_dr, center)
        ctx.rows = g.shape[0]
        return torch.from_numpy(_core.contract_pairs(g.detach().contiguous().numpy(), dG_dr.numpy(), center.numpy()))

    @staticmethod
    @once_differentiable
    def backward(ctx, u: torch.Tensor):
        dG_dr, center = ctx.saved_tensors
        g_hat = _core.contract_pairs_adjoint(u.contiguous().numpy(), dG_dr.numpy(), center.numpy(), ctx.rows)
        return torch.from_numpy(g_hat), None, None


def contract_pairs(g: torch.Tensor, dG_dr: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """v_p = Σ_μ g[center[p], μ] dG_dr[p, μ, :], (P, 3); differentiable in g."""
    if g.device.type == "cpu" and g.dtype == torch.float64 and dG_dr.dtype in (torch.float64, torch.float32):
        return _PairContraction.apply(g, dG_dr, center)
    return torch.bmm(g[center].unsqueeze(1), dG_dr.to(g.dtype)).squeeze(1)


# Threads of the streamed descriptor kernels (the core's own std::threads,
# which neither spin nor share torch's OpenMP pool, so that they can use
# cores torch's single thread leaves idle); 0: torch's intra-op threads.
# nnp.train sets it from its `kernel_threads` setting.
_KERNEL_THREADS = 0


def set_kernel_threads(n: int) -> None:
    """Threads of the streamed kernels of this process (0: torch's count);
    the results do not depend on it."""
    global _KERNEL_THREADS
    if n < 0:
        raise ValueError(f"kernel threads must be >= 0, got {n}")
    _KERNEL_THREADS = int(n)


def kernel_threads() -> int:
    return _KERNEL_THREADS or torch.get_num_threads()


class _StreamedContraction(torch.autograd.Function):
    """contract_pairs without stored derivatives (a streamed batch): the
    core computes ∂G/∂r again per centre and never keeps it, forward with
    the force pass of MD (v_p = Σ_μ g_cμ ∂G_cμ/∂r_p), backward with the
    Jacobian-vector product ĝ_cμ = Σ_p u_p·∂G_cμ/∂r_p: the exact gradient
    of a loss on v, with memory per centre atom only (nnp/training_kernels.h)."""

    @staticmethod
    def forward(ctx, g, core, element: int, center, pair_vector, pair_element):
        args = (center.detach().cpu().contiguous().numpy(), pair_vector.detach().cpu().contiguous().numpy(),
                pair_element)
        ctx.core, ctx.element, ctx.args, ctx.rows = core, element, args, g.shape[0]
        v = core.contract_pairs(element, g.detach().cpu().contiguous().numpy(), *args, kernel_threads())
        return torch.from_numpy(v).to(g.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, u):
        g_hat = ctx.core.contract_pairs_adjoint(ctx.element, u.detach().cpu().contiguous().numpy(), *ctx.args,
                                                ctx.rows, kernel_threads())
        return torch.from_numpy(g_hat).to(u.device), None, None, None, None, None


def streamed_contract_pairs(g: torch.Tensor, descriptors: DescriptorSet, element: str, center: torch.Tensor,
                            pair_vector: torch.Tensor, pair_element: torch.Tensor) -> torch.Tensor:
    """contract_pairs(g, ∂G/∂r, center) for a batch without dG_dr, ∂G/∂r
    computed by the core (`pair_element`: the element index of each
    entry's neighbour); differentiable in g."""
    k = descriptors.elements.index(element)
    kinds = pair_element.detach().cpu().numpy().astype(np.int32)
    return _StreamedContraction.apply(g, descriptors.core(), k, center, pair_vector, kinds)


def atom_elements(batch: Batch, elements: Sequence[str]) -> torch.Tensor:
    """Element index (into `elements`) of every atom of the batch, from its blocks."""
    out = torch.full((batch.n_total_atoms,), -1, dtype=torch.long, device=batch.atom_struct.device)
    for k, e in enumerate(elements):
        out[batch.blocks[e].atom] = k
    return out


class _PairScatter(torch.autograd.Function):
    """Forces and virial from the pair vectors v_p in one C++ pass (and its
    adjoint): torch's index_add pair and the (P, 3, 3) outer products of the
    virial, with the reductions of their backward, made a third of a
    training evaluation."""

    @staticmethod
    def forward(ctx, v, center_atom, neighbor, pair_vector, pair_struct, n_atoms: int, n_structures: int,
                with_virial: bool):
        args = (center_atom.contiguous(), neighbor.contiguous(), pair_vector.detach().contiguous(),
                pair_struct.contiguous())
        ctx.save_for_backward(*args)
        ctx.with_virial = with_virial
        F, W = _core.scatter_pairs(v.detach().contiguous().numpy(), *(t.numpy() for t in args), n_atoms,
                                   n_structures, with_virial)
        return torch.from_numpy(F), torch.from_numpy(W)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_F, grad_W):
        center_atom, neighbor, pair_vector, pair_struct = ctx.saved_tensors
        gW = grad_W.contiguous().numpy() if ctx.with_virial and grad_W is not None else None
        gv = _core.scatter_pairs_adjoint(grad_F.contiguous().numpy(), gW, center_atom.numpy(), neighbor.numpy(),
                                         pair_vector.numpy(), pair_struct.numpy())
        return torch.from_numpy(gv), None, None, None, None, None, None, None


def scatter_pairs(v: torch.Tensor, center_atom: torch.Tensor, neighbor: torch.Tensor, pair_vector: torch.Tensor,
                  pair_struct: torch.Tensor, n_atoms: int, n_structures: int,
                  with_virial: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Forces (N, 3), F[c] += v_p and F[j] −= v_p, and with `with_virial` the
    virial (S, 3, 3), W[s] −= r_p ⊗ v_p; differentiable in v."""
    if v.device.type == "cpu" and v.dtype == torch.float64 and pair_vector.dtype == torch.float64:
        F, W = _PairScatter.apply(v, center_atom, neighbor, pair_vector, pair_struct, n_atoms, n_structures,
                                  with_virial)
        return F, (W if with_virial else None)
    F = torch.zeros((n_atoms, 3), dtype=v.dtype, device=v.device)
    F = F.index_add(0, center_atom, v).index_add(0, neighbor, -v)
    if not with_virial:
        return F, None
    W = torch.zeros((n_structures, 3, 3), dtype=v.dtype, device=v.device)
    return F, W.index_add(0, pair_struct, -pair_vector.unsqueeze(2) * v.unsqueeze(1))


class Softplus(nn.Module):
    """log(1 + e^z) without overflow, max(z, 0) + log1p(e^−|z|) as the C++
    core computes it (torch's nn.Softplus switches to z above a threshold)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(z, torch.zeros_like(z))


def _activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "softplus":
        return Softplus()
    if name == "silu":
        return nn.SiLU()
    if name == "linear":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATIONS}")


class ElementNetwork(nn.Module):
    """y_l = a_l(W_l y_{l−1} + b_l), l = 1..L, scalar output."""

    def __init__(self, n_inputs: int, sizes: Sequence[int], activations: Sequence[str]):
        super().__init__()
        sizes = [int(s) for s in sizes]
        activations = list(activations)
        if not sizes or sizes[-1] != 1:
            raise ValueError(f"the last layer must have one output, got sizes {sizes}")
        if len(activations) != len(sizes):
            raise ValueError("one activation per layer is needed")
        self.activations = activations
        self.linears = nn.ModuleList()
        n_in = n_inputs
        for n_out in sizes:
            self.linears.append(nn.Linear(n_in, n_out, dtype=DTYPE))
            n_in = n_out
        self.acts = nn.ModuleList(_activation(a) for a in activations)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Glorot-uniform weights, zero biases, drawn from `generator`."""
        with torch.no_grad():
            for lin in self.linears:
                n_out, n_in = lin.weight.shape
                bound = (6.0 / (n_in + n_out)) ** 0.5
                lin.weight.copy_((torch.rand(lin.weight.shape, generator=generator, dtype=DTYPE) * 2 - 1) * bound)
                lin.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, M) -> (n,)
        for lin, act in zip(self.linears, self.acts):
            x = act(lin(x))
        return x.squeeze(-1)


def _reduced_statistics(G: torch.Tensor, mode: str, reduce) -> tuple[torch.Tensor, ...]:
    """(min, max, center, width, rows) of the rows G of all shards; `reduce`
    combines each shard's partial statistics (NNPModel.fit_scaling)."""
    M = G.shape[1]
    n = int(reduce("sum", torch.tensor([float(len(G))], dtype=DTYPE))[0])
    inf = torch.full((M,), torch.inf, dtype=DTYPE)
    lo = reduce("min", G.min(0).values if len(G) else inf)
    hi = reduce("max", G.max(0).values if len(G) else -inf)
    if n == 0 or mode != "standard":
        return lo, hi, 0.5 * (lo + hi), 0.5 * (hi - lo), n
    mean = reduce("sum", G.sum(0)) / n
    var = reduce("sum", ((G - mean) ** 2).sum(0)) / n  # two passes, as torch's std
    return lo, hi, mean, var.sqrt(), n


class NNPModel(nn.Module):
    """Per-element networks, descriptor scaling and reference energies."""

    def __init__(
        self,
        descriptors: DescriptorSet,
        hidden: Sequence[int] = (30, 30),
        activation: str = "tanh",
        *,
        architectures: dict[str, tuple[list[int], list[str]]] | None = None,
        repulsion: Sequence[Repulsion] = (),
        quadratic: bool | Sequence[str] = False,
    ):
        """`hidden` and `activation` give every element the same hidden layers
        and a linear output; `architectures` (element -> (sizes incl. output,
        activations)) overrides that per element (used when reading a file).
        `repulsion`: optional ZBL cores (fixed, not trained). `quadratic`:
        True (every element) or the elements that also have a quadratic term
        Q(x) = b·x + xᵀAx of the scaled descriptor (nnp.model.quadratic; buffers,
        zero until set)."""
        super().__init__()
        self.descriptors = descriptors
        self.elements = tuple(descriptors.elements)
        self.repulsion = list(repulsion)
        # Checked as the file would be (known elements, 0 < r_inner < r_outer ≤ cutoff).
        PotentialData(descriptors, {}, repulsion=self.repulsion).check_repulsion()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {ACTIVATIONS}")
        if isinstance(quadratic, bool):
            self.quadratic_elements = self.elements if quadratic else ()
        else:
            unknown = sorted(set(quadratic) - set(self.elements))
            if unknown:
                raise ValueError(f"quadratic terms for {unknown}, not among the elements {list(self.elements)}")
            self.quadratic_elements = tuple(e for e in self.elements if e in set(quadratic))
        nets = {}
        for e in self.elements:
            if architectures is not None:
                sizes, acts = architectures[e]
            else:
                sizes = [int(h) for h in hidden] + [1]
                acts = [activation] * len(hidden) + ["linear"]
            nets[e] = ElementNetwork(descriptors.size(e), sizes, acts)
            M = descriptors.size(e)
            self.register_buffer(f"center_{e}", torch.zeros(M, dtype=DTYPE))
            self.register_buffer(f"width_{e}", torch.ones(M, dtype=DTYPE))
            self.register_buffer(f"gmin_{e}", torch.zeros(M, dtype=DTYPE))
            self.register_buffer(f"gmax_{e}", torch.zeros(M, dtype=DTYPE))
            self.register_buffer(f"e0_{e}", torch.zeros((), dtype=DTYPE))
            if e in self.quadratic_elements:
                self.register_buffer(f"qlinear_{e}", torch.zeros(M, dtype=DTYPE))
                self.register_buffer(f"qmatrix_{e}", torch.zeros((M, M), dtype=DTYPE))
        self.nets = nn.ModuleDict(nets)

    # -------------------------------------------------------------- set-up

    def scaling(self, e: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (getattr(self, f"center_{e}"), getattr(self, f"width_{e}"),
                getattr(self, f"gmin_{e}"), getattr(self, f"gmax_{e}"))

    def reference_energy(self, e: str) -> torch.Tensor:
        return getattr(self, f"e0_{e}")

    def quadratic_term(self, e: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(b (M,), A (M, M)) of element e's quadratic term."""
        return getattr(self, f"qlinear_{e}"), getattr(self, f"qmatrix_{e}")

    def atomic_energy(self, e: str, x: torch.Tensor) -> torch.Tensor:
        """E_i − e0 of atoms of element e with scaled descriptors x (R, M): the
        network, plus the quadratic term when the model has one."""
        out = self.nets[e](x)
        if e in self.quadratic_elements:
            b, A = self.quadratic_term(e)
            out = out + x @ b + ((x @ A) * x).sum(-1)
        return out

    def init_weights(self, seed: int) -> None:
        g = torch.Generator().manual_seed(int(seed))
        for e in self.elements:
            self.nets[e].reset_parameters(g)

    @torch.no_grad()
    def fit_scaling(self, data: FeaturizedDataset, structures: Sequence[int] | None = None, mode: str = "standard",
                    reduce=None) -> None:
        """center/width/min/max of every function over the atoms of `structures`.

        standard: center = mean, width = std;  minmax: center = (min+max)/2,
        width = (max−min)/2 (x in [−1, 1]). Widths are floored at
        max(1e-3·max|G|, 1e-8) so near-constant functions stay tame.
        `reduce(op, tensor)` ("sum", "min", "max"), when given, combines the
        statistics of shards of the data (nnp.train.distributed): min and
        max exactly, mean and std from sums (equal to rounding).
        """
        if mode not in SCALING_MODES:
            raise ValueError(f"unknown scaling mode {mode!r}; choose from {SCALING_MODES}")
        for e in self.elements:
            b = data.blocks[e]
            G = b.G
            if structures is not None:
                keep = torch.zeros(len(data), dtype=torch.bool)
                keep[torch.as_tensor(np.asarray(structures, dtype=np.int64))] = True
                G = G[keep[b.row_struct]]
            center, width, gmin, gmax = self.scaling(e)
            if reduce is not None:
                lo, hi, c, w, n = _reduced_statistics(G, mode, reduce)
            else:
                n = len(G)
            if n == 0:  # element absent from the training set
                center.zero_(), width.fill_(1.0), gmin.zero_(), gmax.zero_()
                continue
            if reduce is None:
                lo, hi = G.min(0).values, G.max(0).values
                if mode == "standard":
                    c, w = G.mean(0), G.std(0, unbiased=False)
                else:
                    c, w = 0.5 * (lo + hi), 0.5 * (hi - lo)
            floor = torch.clamp(WIDTH_FLOOR_RELATIVE * torch.maximum(lo.abs(), hi.abs()), min=WIDTH_FLOOR_ABSOLUTE)
            center.copy_(c)
            width.copy_(torch.maximum(w, floor))
            gmin.copy_(lo)
            gmax.copy_(hi)

    @torch.no_grad()
    def fit_reference_energies(self, data: FeaturizedDataset, structures: Sequence[int] | None = None) -> None:
        """e0 per element: least squares of the energy per atom against the
        composition fractions, (E_s/N_s) ≈ Σ_e (n_se/N_s) e0_e."""
        idx = np.arange(len(data)) if structures is None else np.asarray(structures, dtype=np.int64)
        comp = data.composition[idx].numpy()
        n = data.n_atoms[idx].numpy().astype(float)
        energy = data.energy[idx].numpy()
        ok = np.isfinite(energy)
        A = comp[ok] / n[ok, None]
        y = energy[ok] / n[ok]
        e0 = np.linalg.lstsq(A, y, rcond=None)[0] if len(y) else np.zeros(len(self.elements))
        for k, e in enumerate(self.elements):
            # An element absent from the data gets 0 (lstsq's minimum norm).
            self.reference_energy(e).fill_(float(e0[k]) if comp[ok, k].any() else 0.0)

    # ------------------------------------------------------------- forward

    def forward(
        self,
        batch: Batch,
        forces: bool = True,
        stress: bool = False,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Predictions for a batch: energy (S,), atom_energy (N,), and with
        `forces` forces (N, 3); with `stress` also virial (S, 3, 3) and
        stress (S, 3, 3) (NaN for non-periodic structures). `create_graph`
        keeps the graph of the forces for training on them."""
        S, N = batch.n_structures, batch.n_total_atoms
        derivatives = forces or stress
        with torch.set_grad_enabled(derivatives or torch.is_grad_enabled()):
            device = batch.atom_struct.device
            atom_energy = torch.zeros(N, dtype=DTYPE, device=device)
            inputs, outputs = [], []
            for e in self.elements:
                b = batch.blocks[e]
                if b.G.shape[0] == 0:
                    continue
                G = b.G.detach().requires_grad_(True) if derivatives else b.G  # (R, M)
                center, width, _, _ = self.scaling(e)
                E_i = self.reference_energy(e) + self.atomic_energy(e, (G - center) / width)  # (R,)
                atom_energy = atom_energy.index_add(0, b.atom, E_i)
                inputs.append(G)
                outputs.append(E_i.sum())
            rep = self._repulsion(batch) if self.repulsion else {}
            for e, (E_p, _) in rep.items():
                atom_energy = atom_energy.index_add(0, batch.blocks[e].atom[batch.blocks[e].pair_center], E_p)
            energy = torch.zeros(S, dtype=DTYPE, device=device).index_add(0, batch.atom_struct, atom_energy)
            out = {"energy": energy, "atom_energy": atom_energy}
            if not derivatives:
                return out
            # dE/dG_i for every atom; E = Σ E_i and E_i depends on G_i only.
            grads = torch.autograd.grad(sum(outputs), inputs, create_graph=create_graph) if inputs else []
        F = torch.zeros((N, 3), dtype=DTYPE, device=device)
        W = torch.zeros((S, 3, 3), dtype=DTYPE, device=device)
        streamed = any(batch.blocks[e].dG_dr is None for e in self.elements)
        kind = atom_elements(batch, self.elements) if streamed else None
        k = 0
        for e in self.elements:
            b = batch.blocks[e]
            if b.G.shape[0] == 0:
                continue
            dE_dG = grads[k]  # (R, M)
            k += 1
            # v_p = Σ_μ dE/dG[centre(p), μ] · dG_dr[p, μ, :]   (P, 3)
            if b.dG_dr is None:  # streamed: ∂G/∂r from the core, never stored
                v = streamed_contract_pairs(dE_dG, self.descriptors, e, b.pair_center, b.pair_vector,
                                            kind[b.pair_neighbor])
            else:
                P, M = b.dG_dr.shape[0], b.G.shape[1]
                assert b.dG_dr.shape == (P, M, 3) and b.pair_vector.shape == (P, 3), "inconsistent batch"
                v = contract_pairs(dE_dG, b.dG_dr, b.pair_center)
            if e in rep:
                v = v + rep[e][1]
            # F_i += v_p (centre), F_j −= v_p (neighbour), as r_ij = r_j − r_i;
            # W = −Σ_p r_p ⊗ v_p.
            F_e, W_e = scatter_pairs(v, b.atom[b.pair_center], b.pair_neighbor, b.pair_vector, b.pair_struct, N, S,
                                     with_virial=stress)
            F = F + F_e
            if stress:
                W = W + W_e
        if forces:
            out["forces"] = F
        if stress:
            out["virial"] = W
            out["stress"] = -W / batch.volume.view(-1, 1, 1)
        return out

    def _repulsion(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per centre element: ½ E_rep of each neighbour entry (P,) and its
        gradient with respect to the entry's vector r_ij (P, 3)."""
        if float(batch.shortest_pair) >= max(core.r_outer for core in self.repulsion):
            return {}  # no pair inside any core: the terms below would all be 0
        atom_element = atom_elements(batch, self.elements)
        out = {}
        for a, e in enumerate(self.elements):
            b = batch.blocks[e]
            vec = b.pair_vector
            r = torch.linalg.vector_norm(vec, dim=1)
            E = torch.zeros_like(r)
            dE = torch.zeros_like(r)
            nb = atom_element[b.pair_neighbor]
            for core in self.repulsion:
                if e not in (core.element_a, core.element_b):
                    continue
                other = self.elements.index(core.element_b if e == core.element_a else core.element_a)
                sel = (nb == other) & (r < core.r_outer)
                if not bool(sel.any()):
                    continue
                rs = r[sel]
                zbl, dzbl = zbl_energy(atomic_number(core.element_a), atomic_number(core.element_b), rs)
                s, ds = repulsion_switch(rs, core.r_inner, core.r_outer)
                E = E.index_put((sel,), 0.5 * zbl * s)
                dE = dE.index_put((sel,), 0.5 * (dzbl * s + zbl * ds))
            # dE/dr_ij = dE/dr · r_ij / r; zero where there is no core.
            g = torch.where(dE != 0, dE / r, torch.zeros_like(r))
            out[e] = (E, g.unsqueeze(1) * vec)
        return out

    # --------------------------------------------------- potential file I/O

    def to_potential_data(self, comments: Sequence[str] = ()) -> PotentialData:
        models = {}
        for e in self.elements:
            center, width, gmin, gmax = (t.detach().numpy().copy() for t in self.scaling(e))
            net = self.nets[e]
            layers = [
                Layer(lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy(), act)
                for lin, act in zip(net.linears, net.activations)
            ]
            quadratic = None
            if e in self.quadratic_elements:
                b, A = (t.detach().numpy().copy() for t in self.quadratic_term(e))
                quadratic = QuadraticTerm(b, A)
            models[e] = ElementModel(float(self.reference_energy(e)), Scaling(center, width, gmin, gmax), layers,
                                     quadratic)
        pot = PotentialData(self.descriptors, models, list(comments), list(self.repulsion))
        pot.check()
        return pot

    @classmethod
    def from_potential_data(cls, pot: PotentialData) -> "NNPModel":
        pot.check()
        with_gp = [e for e, m in pot.models.items() if m.gp is not None]
        if with_gp:  # silently dropping it would give wrong energies
            raise ValueError(f"element {with_gp[0]} has a GP, which the torch model does not evaluate: use "
                             "NNPCalculator or nnp.evaluate (the C++ core)")
        arch = {
            e: ([layer.weights.shape[0] for layer in m.layers], [layer.activation for layer in m.layers])
            for e, m in pot.models.items()
        }
        model = cls(pot.descriptors, architectures=arch, repulsion=pot.repulsion,
                    quadratic=[e for e, m in pot.models.items() if m.quadratic is not None])
        with torch.no_grad():
            for e, m in pot.models.items():
                for lin, layer in zip(model.nets[e].linears, m.layers):
                    lin.weight.copy_(torch.from_numpy(np.asarray(layer.weights, dtype=np.float64)))
                    lin.bias.copy_(torch.from_numpy(np.asarray(layer.biases, dtype=np.float64)))
                s = m.scaling
                for buf, arr in zip(model.scaling(e), (s.center, s.width, s.min, s.max)):
                    buf.copy_(torch.from_numpy(np.asarray(arr, dtype=np.float64)))
                model.reference_energy(e).fill_(m.reference_energy)
                if m.quadratic is not None:
                    b, A = model.quadratic_term(e)
                    b.copy_(torch.from_numpy(m.quadratic.linear))
                    A.copy_(torch.from_numpy(m.quadratic.matrix))
        return model

    # ------------------------------------------------------------- helpers

    def predict(self, structures, featurize=None, stress: bool = True) -> list[dict[str, np.ndarray]]:
        """Energy, forces (and stress for periodic cells) of ASE structures,
        featurised with `featurize` (default: the C++ core)."""
        if not isinstance(structures, (list, tuple)):
            structures = [structures]
        data = FeaturizedDataset.from_structures(structures, self.descriptors, featurize)
        batch = data.collate(range(len(data)))
        out = {k: v.detach() for k, v in self(batch, forces=True, stress=stress).items()}
        results = []
        offs = data.atom_offsets
        for s in range(len(data)):
            r = {
                "energy": float(out["energy"][s]),
                "forces": out["forces"][offs[s] : offs[s + 1]].numpy(),
            }
            if stress:
                r["stress"] = out["stress"][s].numpy()
            results.append(r)
        return results
