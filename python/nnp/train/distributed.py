"""Data-parallel training (torch.distributed), launched by torchrun:

    torchrun --nproc_per_node N -m nnp.train --data train.xyz -o Si.nnp
    torchrun --nnodes M --nproc_per_node N --rdzv_backend c10d --rdzv_endpoint HOST:PORT -m nnp.train ...

Every rank reads the data (the descriptor choice, the split and the batch
order need all of it) but featurises and holds only its shard: structures
are dealt to ranks by atom count (`assign`), and a `ShardedDataset` holds a
rank's structures with local indices besides the labels of all of them.
Training code keeps global structure indices (split, batches, results) and
asks `owned` for the local ones it touches; every sum over structures is
summed over ranks: gradients of each Adam batch (each rank its share of
the batch, normalised by the whole batch's counts) and of the full-batch
L-BFGS loss, error sums, the quadratic term's normal equations, scaling
statistics and the shortest pair distances. The result is the model one
process trains, up to the order of floating-point sums. Rank 0 decides
(best epoch, early stopping) from reduced numbers it broadcasts, prints
and writes; the other ranks' standard output goes to /dev/null.

Backend: gloo for CPU tensors, NCCL for CUDA tensors where torch sees GPUs
(one GPU per local rank; untested so far).
A rank that fails or dies makes the others fail at their next collective
(a closed connection, or `NNP_DDP_TIMEOUT` seconds without an answer,
default 600) with a one-line `ChildProcessError`, and torchrun ends the rest.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from nnp.data import FeaturizedDataset
from nnp.data.dataset import _Labels

TIMEOUT_ENV = "NNP_DDP_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0

Reduce = Callable[[str, torch.Tensor], torch.Tensor]  # reduce("sum" | "min" | "max", tensor) -> over all ranks


@dataclass(frozen=True)
class Context:
    """This process's place in the run (from torchrun's environment)."""

    rank: int
    world: int
    local_rank: int
    local_world: int

    @property
    def main(self) -> bool:
        return self.rank == 0


_CONTEXT: Context | None = None


def environment() -> tuple[int, int, int, int] | None:
    """(rank, world size, local rank, local world size) when torchrun
    started this process as one of several, else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return None
    if world <= 1 or "RANK" not in os.environ:
        return None
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return rank, world, local_rank, local_world


def start() -> Context | None:
    """Join the process group when launched by torchrun with several ranks;
    None for a single process. Ranks other than 0 print nothing on
    standard output."""
    global _CONTEXT
    env = environment()
    if env is None:
        return None
    rank, world, local_rank, local_world = env
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout))
    _CONTEXT = Context(rank, world, local_rank, local_world)
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    return _CONTEXT


def finish() -> None:
    """Leave the process group (after the last collective)."""
    global _CONTEXT
    if dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = None


def context() -> Context | None:
    return _CONTEXT


def is_main() -> bool:
    """Whether this process writes outputs: rank 0, or the only process."""
    return _CONTEXT is None or _CONTEXT.main


def device_for(device: str) -> str:
    """The device of this rank: cuda means the local rank's GPU."""
    if _CONTEXT is not None and torch.device(device).type == "cuda" and torch.device(device).index is None:
        return f"cuda:{_CONTEXT.local_rank}"
    return device


# ----------------------------------------------------------- collectives


class PeerFailed(ChildProcessError):
    """Another rank failed or stopped answering."""


def _checked(fn: Callable[[], Any]) -> Any:
    """Run a collective; a broken or timed-out group becomes one line."""
    try:
        return fn()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PeerFailed(f"rank {_CONTEXT.rank}: another rank failed or stopped answering ({first[:200]}); "
                         "its own error is above") from None


_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """`t` reduced over all ranks (a new tensor on t's device); `t` itself
    without a process group."""
    if _CONTEXT is None:
        return t
    buf = t.detach().clone()
    _checked(lambda: dist.all_reduce(buf, op=_OPS[op]))
    return buf


def reduce(op: str, t: torch.Tensor) -> torch.Tensor:
    """all_reduce with the operation first (a `Reduce`)."""
    return all_reduce(t, op)


class Chain:
    """Sums that must be the one process's bit for bit (the quadratic
    fit's normal equations, whose solve is ill-conditioned), added in
    structure order: rank r receives the running sums of ranks 0 .. r−1,
    adds its own structures (the next ones in order: shards are
    consecutive) and passes them on; the last rank's total goes to all.
    The ranks add one after the other (the fit is not parallel)."""

    def receive(self, *arrays: np.ndarray) -> None:
        if _CONTEXT.rank > 0:
            for a in arrays:
                _checked(lambda: dist.recv(_flat(a), src=_CONTEXT.rank - 1))

    def send(self, *arrays: np.ndarray) -> None:
        last = _CONTEXT.world - 1
        if _CONTEXT.rank < last:
            for a in arrays:
                _checked(lambda: dist.send(_flat(a), dst=_CONTEXT.rank + 1))
        for a in arrays:
            _checked(lambda: dist.broadcast(_flat(a), src=last))


def _flat(a: np.ndarray) -> torch.Tensor:
    """A contiguous 1-D tensor on `a`'s memory (C or Fortran order)."""
    flat = a.reshape(-1, order="A")
    assert np.shares_memory(flat, a), "the sums must be received in place"
    return torch.from_numpy(flat)


def chain(data: FeaturizedDataset) -> Chain | None:
    """The Chain for sums over `data`'s structures in order; None when not sharded."""
    return Chain() if getattr(data, "shard", None) is not None else None


def reducer(data: FeaturizedDataset) -> Reduce | None:
    """The reduction over ranks for sums over `data`'s structures; None
    when `data` is not sharded."""
    return reduce if getattr(data, "shard", None) is not None else None


def reduce_floats(data: FeaturizedDataset, values: Sequence[float], op: str = "sum") -> list[float]:
    if getattr(data, "shard", None) is None:
        return list(values)
    return all_reduce(torch.tensor(values, dtype=torch.float64), op).tolist()


def reduce_gradients(data: FeaturizedDataset, params: Sequence[torch.Tensor]) -> None:
    """Sum every parameter's .grad over ranks (one flat all-reduce); a rank
    without a gradient (none of its structures in the batch) adds zeros. A
    parameter no rank has a gradient for keeps None, as in one process
    (Adam leaves such a parameter alone; a zero gradient would move it)."""
    if getattr(data, "shard", None) is None:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    present = torch.tensor([float(p.grad is not None) for p in params], dtype=grads[0].dtype, device=grads[0].device)
    flat = all_reduce(torch.cat([g.reshape(-1) for g in grads] + [present]))
    start = 0
    for k, p in enumerate(params):
        n = p.numel()
        p.grad = flat[start : start + n].view_as(p).clone() if float(flat[-len(params) + k]) > 0 else None
        start += n


def broadcast(data: FeaturizedDataset | None, obj: Any) -> Any:
    """Rank 0's `obj` on every rank (pickled); `obj` itself without a group."""
    if _CONTEXT is None or (data is not None and getattr(data, "shard", None) is None):
        return obj
    box = [obj]
    _checked(lambda: dist.broadcast_object_list(box, src=0))
    return box[0]


def on_main(fn: Callable[[], Any]) -> Any:
    """fn() on rank 0, its result (or its exception, re-raised with the
    same type and message) on every rank."""
    if _CONTEXT is None:
        return fn()
    outcome: Any = None
    if _CONTEXT.main:
        try:
            outcome = ("ok", fn())
        except Exception as err:  # noqa: BLE001 - re-raised on every rank below
            outcome = ("error", type(err), str(err))
    outcome = broadcast(None, outcome)
    if outcome[0] == "error":
        kind, message = outcome[1], outcome[2]
        raise (kind(message) if issubclass(kind, Exception) else RuntimeError(message))
    return outcome[1]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if _CONTEXT is None:
        return [obj]
    out: list[Any] = [None] * _CONTEXT.world
    _checked(lambda: dist.all_gather_object(out, obj))
    return out


def check_same_data(digest: str) -> None:
    """Every rank must read the same data (one file, or identical copies)."""
    digests = gather_objects(digest)
    if len(set(digests)) > 1:
        raise ValueError("the ranks read different data (sha256 " + ", ".join(
            f"rank {r} {d[:12]}" for r, d in enumerate(digests)) + "): give every node the same file")


# ---------------------------------------------------------------- shards


def assign(n_atoms: np.ndarray, world: int) -> np.ndarray:
    """The rank of each structure: consecutive runs (the quadratic fit adds
    its sums in structure order along the ranks, `Chain`) of about equal
    atom counts, so that full-batch passes cost about the same on every
    rank; at least one structure each."""
    n = np.asarray(n_atoms, dtype=np.int64)
    S = len(n)
    if S < world:
        raise ValueError(f"{S} structures cannot be shared by {world} ranks: start fewer ranks "
                         "(torchrun --nproc_per_node)")
    before = np.cumsum(n) - n  # atoms before each structure
    starts = [0]
    for r in range(1, world):
        s = int(np.searchsorted(before, r * n.sum() / world))  # the first structure past r/world of the atoms
        starts.append(min(max(s, starts[-1] + 1), S - (world - r)))
    owner = np.zeros(S, dtype=np.int64)
    for r, s in enumerate(starts):
        owner[s:] = r
    return owner


@dataclass
class Shard:
    """A rank's share of the structures and what it knows of all of them.
    Global arrays are indexed by structure in data-set order (the data,
    then the isolated atoms)."""

    owned: np.ndarray  # (S_local,) global index of each local structure, ascending
    local_of: np.ndarray  # (S,) local index of each structure, −1 on another rank
    n_atoms: torch.Tensor  # (S,)
    energy: torch.Tensor  # (S,) eV
    composition: torch.Tensor  # (S, n_elements)
    stress_ok: torch.Tensor  # (S,) a stress label on a periodic cell
    config_types: list[str]
    elements: tuple[str, ...]
    isolated: np.ndarray | None = None  # global indices of structures without a neighbour pair

    def __len__(self) -> int:
        return len(self.local_of)


class Labels:
    """The labels of all structures, as NNPModel.fit_reference_energies reads them."""

    def __init__(self, shard: Shard):
        self.n_atoms, self.energy, self.composition = shard.n_atoms, shard.energy, shard.composition
        self.elements, self._n = shard.elements, len(shard)

    def __len__(self) -> int:
        return self._n


class ShardedDataset(FeaturizedDataset):
    """One rank's structures, featurised (local indices 0 .. S_local−1),
    with `shard`; the shortest pair distances are those of all ranks."""

    shard: Shard

    def shortest_pair_distances(self) -> dict[tuple[str, str], float]:
        mine = super().shortest_pair_distances()
        pairs = [(a, b) for i, a in enumerate(self.elements) for b in self.elements[i:]]
        values = all_reduce(torch.tensor([mine.get(p, math.inf) for p in pairs], dtype=torch.float64), "min")
        return {p: float(v) for p, v in zip(pairs, values) if math.isfinite(float(v))}

    def shortest_pair_distance(self) -> float:
        return float(all_reduce(torch.tensor([super().shortest_pair_distance()], dtype=torch.float64), "min")[0])


def owned(data: FeaturizedDataset, indices) -> np.ndarray:
    """The local indices of the structures among global `indices` that this
    rank holds, in their order; `indices` themselves when not sharded."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    shard = getattr(data, "shard", None)
    if shard is None:
        return idx
    local = shard.local_of[idx]
    return local[local >= 0]


def n_structures(data: FeaturizedDataset) -> int:
    """Structures of the whole data set (all ranks)."""
    shard = getattr(data, "shard", None)
    return len(data) if shard is None else len(shard)


def labels(data: FeaturizedDataset):
    """What fit_reference_energies reads, for all structures."""
    shard = getattr(data, "shard", None)
    return data if shard is None else Labels(shard)


def counts(data: FeaturizedDataset, indices) -> tuple[int, int]:
    """(atoms, structures with a stress label) among global `indices`."""
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
    shard = getattr(data, "shard", None)
    if shard is None:
        ok = torch.isfinite(data.stress[:, 0, 0]) & torch.isfinite(data.volume)
        return int(data.n_atoms[idx].sum()), int(ok[idx].sum())
    return int(shard.n_atoms[idx].sum()), int(shard.stress_ok[idx].sum())


def config_types(data: FeaturizedDataset) -> list[str]:
    shard = getattr(data, "shard", None)
    return data.config_types if shard is None else shard.config_types


def my_structures(ctx: Context, structures: list) -> np.ndarray:
    """The indices of this rank's share of `structures` (the data with its
    isolated atoms, nnp.train.training_set.with_isolated_atoms)."""
    return np.flatnonzero(assign(np.array([len(a) for a in structures]), ctx.world) == ctx.rank)


def featurize_shard(ctx: Context, structures: list, descriptors, streamed: bool,
                    progress: Callable[[int, int], None] | None = None) -> ShardedDataset:
    """This rank's share of `structures` (isolated atoms included, as
    nnp.train.training_set.featurize gives them), featurised, with its Shard."""
    from nnp.train.training_set import DERIVATIVE_DTYPE

    lab = _Labels(len(structures), tuple(descriptors.elements))
    for s, atoms in enumerate(structures):
        lab.add(s, atoms)
    n_atoms, energy, _, stress, volume, composition, config_types_ = lab.tensors()
    mine = my_structures(ctx, structures)
    local_of = np.full(len(structures), -1, dtype=np.int64)
    local_of[mine] = np.arange(len(mine))
    data = ShardedDataset.from_structures([structures[s] for s in mine], descriptors,
                                          derivative_dtype=DERIVATIVE_DTYPE, streamed=streamed, progress=progress)
    stress_ok = torch.isfinite(stress[:, 0, 0]) & torch.isfinite(volume)
    data.shard = Shard(mine, local_of, n_atoms, energy, composition, stress_ok, config_types_, data.elements)
    pairs = sum((off[1:] - off[:-1]) for off in data.pair_offsets.values())
    flags = torch.zeros(len(structures), dtype=torch.float64)
    flags[torch.as_tensor(mine)] = (pairs == 0).to(torch.float64)
    data.shard.isolated = np.flatnonzero(all_reduce(flags).numpy() > 0.5)
    return data


def gather_predictions(data: FeaturizedDataset, model, indices):
    """The model's predictions (nnp.analysis.metrics.Predictions) for the
    global `indices`, in that order, on every rank."""
    from nnp.analysis.metrics import Predictions, predict_model

    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    shard = getattr(data, "shard", None)
    if shard is None:
        return predict_model(model, data, idx)
    local = shard.local_of[idx]
    mine = idx[local >= 0]
    part = predict_model(model, data, local[local >= 0]) if len(mine) else None
    parts = [p for p in gather_objects((mine, part)) if p[1] is not None]
    order = np.concatenate([m for m, _ in parts])
    merged = Predictions.concatenate([p for _, p in parts])
    position = {int(s): k for k, s in enumerate(order)}
    return merged.subset([position[int(s)] for s in idx])
