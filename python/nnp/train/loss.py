"""The training loss and the error metrics, defined once.

The loss of a set of structures is

    L = energy_weight · mean_s((E_s^pred − E_s)/N_s)²
      + force_weight  · mean_{i,c}(F_ic^pred − F_ic)²
      + stress_weight · mean_{s,v}((W_sv^pred − W_sv)/N_s)²     (v: 6 Voigt components)

in eV²/atom², eV²/Å² and eV²/atom² (W = −σV, the virial; only structures with
a stress label). `errors` gives the per-structure differences it is made of;
`Objective` sums them over a fixed training set (normalised by that set's
counts, so chunked sums add up to the full-batch loss) or over a minibatch;
`evaluate` accumulates the same differences into `ErrorSums` and reports the
loss with the RMSE and MAE of each quantity (`Metrics`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from nnp.constants import EV_PER_A3_IN_GPA, VOIGT_I, VOIGT_J
from nnp.data import Batch, FeaturizedDataset
from nnp.model.network import NNPModel
from nnp.train import distributed
from nnp.train.config import TrainConfig

# Full-batch (L-BFGS) passes keep the collated training set when the
# featurised data is at most this large (the cache is a second copy), and
# never when derivatives are streamed (each chunk's neighbour entries are
# listed again, so that memory is bounded by the chunk).
FULL_BATCH_CACHE_BYTES = 4 * 2**30

# Fixed predictions of another model for the same batches, blended in with a
# weight: (w, {"energy": ..., "forces": ..., ...}) for one batch.
Mix = tuple[float, dict[str, torch.Tensor]]


@dataclass
class Errors:
    """Per-batch error tensors: energy per atom (S,), force components (3N,),
    virial per atom (S', 6) eV/atom and stress (S', 6) eV/Å³ of the S'
    structures with a stress label."""

    energy: torch.Tensor
    force: torch.Tensor
    virial: torch.Tensor
    stress: torch.Tensor

    def detached(self) -> "Errors":
        return Errors(self.energy.detach(), self.force.detach(), self.virial.detach(), self.stress.detach())


def errors(model: NNPModel, batch: Batch, with_stress: bool, create_graph: bool, mix: Mix | None = None) -> Errors:
    """Errors of `model`'s predictions on `batch`; with `mix` = (w, other),
    of (1 − w)·model + w·other, `other` being fixed predictions for the same
    batch (the quadratic model's, when choosing the best epoch of a blend)."""
    out = model(batch, forces=True, stress=with_stress, create_graph=create_graph)
    if mix is not None:
        w, other = mix
        out = {k: (1.0 - w) * v + w * other[k] if k in other else v for k, v in out.items()}
    de = (out["energy"] - batch.energy) / batch.n_atoms
    df = (out["forces"] - batch.forces).reshape(-1)
    if with_stress:
        # NaN stress: no label, or not a periodic cell (no volume).
        ok = torch.isfinite(batch.stress[:, 0, 0]) & torch.isfinite(batch.volume)
        vol = batch.volume[ok].view(-1, 1, 1)
        # The loss uses the virial per atom, W/N = −σV/N (eV/atom, the scale
        # of the energy term); the metrics use the stress itself.
        w_ref = -batch.stress[ok] * vol
        dw = ((out["virial"][ok] - w_ref) / batch.n_atoms[ok].view(-1, 1, 1))[:, VOIGT_I, VOIGT_J]
        ds = (out["stress"][ok] - batch.stress[ok])[:, VOIGT_I, VOIGT_J]
    else:
        dw = ds = torch.zeros((0, 6), dtype=de.dtype, device=de.device)
    return Errors(de, df, dw, ds)


@dataclass
class SquaredErrors:
    """Sums of squared energy-per-atom and force-component errors over a
    training pass: the RMSEs of the progress log."""

    energy: float = 0.0
    force: float = 0.0

    def add(self, err: Errors) -> None:
        self.energy += float((err.energy.detach() ** 2).sum())
        self.force += float((err.force.detach() ** 2).sum())


def loss_of_rmse(config: TrainConfig, energy_rmse: float, force_rmse: float) -> float:
    """The loss (without the stress term) from the energy and force RMSEs of
    an Adam epoch, whose minibatches each had their own normalisation."""
    return config.energy_weight * energy_rmse**2 + config.force_weight * force_rmse**2


class Objective:
    """The training loss over a fixed set of structures, with the normalising
    counts of that set, so that chunked sums add up to the full-batch loss.

    `indices` are global (all ranks' structures) when `data` is a shard
    (nnp.train.distributed): `local` are those this rank holds, the counts
    are of all of them, and losses and gradients are summed over ranks."""

    def __init__(self, data: FeaturizedDataset, indices: np.ndarray, config: TrainConfig, device: torch.device):
        self.data, self.indices, self.config, self.device = data, indices, config, device
        self.local = distributed.owned(data, indices)
        self.with_stress = config.stress_weight > 0
        self.n_structures = len(indices)
        n_atoms, n_stress = distributed.counts(data, indices)
        self.n_force, self.n_stress = 3 * n_atoms, 6 * n_stress
        self._cached: tuple[int, list[Batch]] | None = None  # (chunk size, batches)
        self.last_sums = SquaredErrors()  # of the last full_batch evaluation

    def loss(self, err: Errors) -> torch.Tensor:
        """The loss of a part of the set, normalised by the whole set's counts."""
        c = self.config
        loss = c.energy_weight * (err.energy**2).sum() / self.n_structures
        loss = loss + c.force_weight * (err.force**2).sum() / self.n_force
        if self.with_stress and self.n_stress:
            loss = loss + c.stress_weight * (err.virial**2).sum() / self.n_stress
        return loss

    def batch_loss(self, model: NNPModel, indices) -> tuple[torch.Tensor, Errors]:
        """The loss of a minibatch, normalised by its own counts. Sharded:
        of this rank's part of the batch, normalised by the whole batch's
        counts (the ranks' gradients add up to the batch's; none of its
        structures here: a zero loss without a graph)."""
        local = distributed.owned(self.data, indices)
        c = self.config
        if getattr(self.data, "shard", None) is not None:
            n_atoms, n_stress = distributed.counts(self.data, indices)
            if len(local) == 0:
                empty = torch.zeros(0, dtype=torch.float64)
                return torch.zeros((), dtype=torch.float64), Errors(empty, empty, empty, empty)
            err = errors(model, self.data.collate(local).to(self.device), self.with_stress, create_graph=True)
            loss = c.energy_weight * (err.energy**2).sum() / len(indices)
            loss = loss + c.force_weight * (err.force**2).sum() / (3 * n_atoms)
            if self.with_stress and n_stress:
                loss = loss + c.stress_weight * (err.virial**2).sum() / (6 * n_stress)
            return loss, err
        batch = self.data.collate(indices).to(self.device)
        err = errors(model, batch, self.with_stress, create_graph=True)
        loss = c.energy_weight * (err.energy**2).mean() + c.force_weight * (err.force**2).mean()
        if self.with_stress and err.virial.numel():
            loss = loss + c.stress_weight * (err.virial**2).mean()
        return loss, err

    def reduced(self, sums: "SquaredErrors") -> "SquaredErrors":
        """`sums` over all ranks (itself when not sharded)."""
        energy, force = distributed.reduce_floats(self.data, [sums.energy, sums.force])
        return SquaredErrors(energy, force)

    def rmse(self, sums: SquaredErrors) -> tuple[float, float]:
        """(energy RMSE, force RMSE) over this set from squared-error sums."""
        return math.sqrt(sums.energy / self.n_structures), math.sqrt(sums.force / self.n_force)

    def chunks(self, chunk: int | None = None):
        """The structures as fixed batches of `chunk` structures (default:
        the config's chunk_size). Kept (on the device) when the set is small
        enough and derivatives are stored: gathering them anew is a large
        part of each L-BFGS evaluation."""
        chunk = chunk or self.config.chunk_size
        if self._cached is not None and self._cached[0] == chunk:
            yield from self._cached[1]
            return
        keep = not self.data.is_streamed and self.data.nbytes() <= FULL_BATCH_CACHE_BYTES
        cached = []
        for start in range(0, len(self.local), chunk):
            batch = self.data.collate(self.local[start : start + chunk]).to(self.device)
            if keep:
                cached.append(batch)
            yield batch
        if keep:
            self._cached = (chunk, cached)

    def full_batch(self, model: NNPModel, chunk: int | None = None) -> float:
        """Gradient of the full-set loss accumulated into .grad (chunked
        backward passes; sharded, summed over ranks: .grad must start at
        zero); returns the loss. Squared-error sums of this evaluation are
        kept in `last_sums` for the log."""
        total = 0.0
        sums = SquaredErrors()
        for batch in self.chunks(chunk):
            err = errors(model, batch, self.with_stress, create_graph=True)
            loss = self.loss(err)
            loss.backward()
            total += float(loss.detach())
            sums.add(err)
        if getattr(self.data, "shard", None) is not None:
            distributed.reduce_gradients(self.data, [p for p in model.parameters() if p.requires_grad])
            total, sums.energy, sums.force = distributed.reduce_floats(self.data, [total, sums.energy, sums.force])
        self.last_sums = sums
        return total


# ------------------------------------------------------------------ metrics


@dataclass
class Metrics:
    """Errors over a set of structures: energy per atom (eV/atom), force
    components (eV/Å), the six stress components of periodic structures with a
    stress label (eV/Å³; NaN when there are none)."""

    loss: float
    energy_rmse: float
    force_rmse: float
    energy_mae: float = math.nan
    force_mae: float = math.nan
    stress_rmse: float = math.nan
    stress_mae: float = math.nan

    def __str__(self) -> str:
        s = f"E {1000 * self.energy_rmse:7.2f} meV/atom  F {self.force_rmse:.4f} eV/Å"
        if math.isfinite(self.stress_rmse):
            s += f"  S {EV_PER_A3_IN_GPA * self.stress_rmse:.3f} GPa"
        return s

    def mae_str(self) -> str:
        s = f"E {1000 * self.energy_mae:7.2f} meV/atom  F {self.force_mae:.4f} eV/Å"
        if math.isfinite(self.stress_mae):
            s += f"  S {EV_PER_A3_IN_GPA * self.stress_mae:.3f} GPa"
        return s


@dataclass
class ErrorSums:
    """Sums of squared and absolute errors over structures, and the counts
    of force and stress components they cover."""

    energy_sq: float = 0.0
    energy_abs: float = 0.0
    force_sq: float = 0.0
    force_abs: float = 0.0
    n_force: int = 0
    virial_sq: float = 0.0
    stress_sq: float = 0.0
    stress_abs: float = 0.0
    n_stress: int = 0

    def reduced(self, data: FeaturizedDataset) -> "ErrorSums":
        """These sums over all ranks (themselves when `data` is not sharded)."""
        if getattr(data, "shard", None) is None:
            return self
        names = [f.name for f in dataclasses.fields(self)]
        values = distributed.reduce_floats(data, [float(getattr(self, k)) for k in names])
        return ErrorSums(**{k: (int(round(v)) if k.startswith("n_") else v) for k, v in zip(names, values)})

    def add(self, err: Errors) -> None:
        self.energy_sq += float((err.energy**2).sum())
        self.energy_abs += float(err.energy.abs().sum())
        self.force_sq += float((err.force**2).sum())
        self.force_abs += float(err.force.abs().sum())
        self.n_force += err.force.numel()
        self.virial_sq += float((err.virial**2).sum())
        self.stress_sq += float((err.stress**2).sum())
        self.stress_abs += float(err.stress.abs().sum())
        self.n_stress += err.stress.numel()

    def metrics(self, n_structures: int, config: TrainConfig) -> Metrics:
        """The loss and the errors over `n_structures` structures."""
        n, nf, ns = n_structures, self.n_force, self.n_stress
        mse_e, mse_f = self.energy_sq / n, self.force_sq / nf
        loss = config.energy_weight * mse_e + config.force_weight * mse_f
        if ns:
            loss += config.stress_weight * self.virial_sq / ns
        nan = math.nan
        return Metrics(
            loss, math.sqrt(mse_e), math.sqrt(mse_f), self.energy_abs / n, self.force_abs / nf,
            math.sqrt(self.stress_sq / ns) if ns else nan, self.stress_abs / ns if ns else nan,
        )


def device_of(model: NNPModel) -> torch.device:
    return next(model.parameters()).device


def evaluate(model: NNPModel, data: FeaturizedDataset, indices, config: TrainConfig, chunk: int | None = None,
             batches=None, mix: tuple[float, list[dict[str, torch.Tensor]]] | None = None) -> Metrics:
    """Loss and errors over the structures `indices`, evaluated in chunks;
    `batches`, when given, are those structures already collated. With
    `mix` = (w, predictions per batch), the errors of (1 − w)·model + w·those
    predictions (`errors`). Sharded data: `indices` are global, each rank
    evaluates its own and the sums are reduced (a collective: every rank
    calls it)."""
    indices = np.asarray(indices, dtype=np.int64)
    local = distributed.owned(data, indices)
    device = device_of(model)
    chunk = chunk or config.chunk_size
    if batches is None:
        batches = (data.collate(local[start : start + chunk]).to(device) for start in range(0, len(local), chunk))
    sums = ErrorSums()
    for k, batch in enumerate(batches):
        err = errors(model, batch, with_stress=True, create_graph=False,
                     mix=(mix[0], mix[1][k]) if mix is not None else None)
        sums.add(err.detached())
    return sums.reduced(data).metrics(len(indices), config)


def metrics_by_config_type(model: NNPModel, data: FeaturizedDataset, indices,
                           config: TrainConfig) -> dict[str, tuple[int, Metrics]]:
    """(structure count, Metrics) per config_type among `indices`."""
    groups: dict[str, list[int]] = {}
    types = distributed.config_types(data)  # of all ranks' structures: each group is evaluated on every rank
    for i in np.asarray(indices, dtype=np.int64):
        groups.setdefault(types[i], []).append(int(i))
    return {k: (len(v), evaluate(model, data, v, config)) for k, v in sorted(groups.items())}
