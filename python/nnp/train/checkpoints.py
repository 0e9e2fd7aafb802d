"""Training checkpoints: the whole state of a training run in one file, so that
an interrupted run (Ctrl-C, SIGKILL, a lost node) resumes where it stopped and
ends with the same model as an uninterrupted run.

The file holds only tensors, numbers, strings, lists and dicts; it is written
atomically (temporary file, then rename) after every epoch and read with
``torch.load(..., weights_only=True)``, which executes no code from the file.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnp.io.potential_file import QuadraticTerm
from nnp.model.quadratic import QuadraticFit

FORMAT = "nnp-checkpoint 1"
# Settings that may change between the interrupted run and its resumption:
# they do not change the numbers.
# derivatives and memory_budget choose how the numbers are computed, not
# which: both derivative modes give the same batches bit for bit.
MAY_DIFFER = ("threads", "kernel_threads", "log_every", "device", "checkpoint_every", "derivatives", "memory_budget")
# Settings added after checkpoints without them were written, with the value
# that gives what the writing version did (others count as their default).
ADDED_LATER = {"quadratic_weight": 0.0}


def path_for(output: str | os.PathLike) -> Path:
    """Where training to `output` keeps its checkpoint."""
    return Path(f"{os.fspath(output)}.ckpt")


def save(path: str | os.PathLike, *, config, data_digest: str, epoch: int, phase: str, model, optimizer,
         scheduler, best_state, best_epoch: int, best_loss: float, history: list, generator: torch.Generator,
         stale: int, stopped: list[str], quadratic: QuadraticFit | None = None) -> None:
    path = Path(path)
    state: dict[str, Any] = {
        "format": FORMAT,
        "config": config.as_dict(),
        "data_sha256": data_digest,
        "epoch": epoch,
        "phase": phase,
        "model": _cpu(model.state_dict()),
        "optimizer": _cpu(optimizer.state_dict()),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "best_state": _cpu(best_state),
        "best_epoch": best_epoch,
        "best_loss": best_loss,
        "history": history,
        "generator": generator.get_state(),
        "stale": stale,
        "stopped": list(stopped),
        "quadratic": _quadratic_state(quadratic),
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path: str | os.PathLike, config, data_digest: str, device: torch.device) -> dict[str, Any]:
    """The state saved at `path`, checked against this run's settings and data."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint {path} to resume from (start without --resume)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable nnp checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not an nnp checkpoint (expected format {FORMAT!r})")
    # A setting added after the checkpoint was written counts as what the
    # writing version did: ADDED_LATER, else its default.
    saved = {**type(config)().as_dict(), **ADDED_LATER, **state["config"]}
    now = config.as_dict()
    for key in MAY_DIFFER:
        saved.pop(key, None), now.pop(key, None)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ValueError(f"{path}: the settings differ from the interrupted run ({details}); "
                         "resume with the same settings, or start over with --force")
    if data_digest and state["data_sha256"] and state["data_sha256"] != data_digest:
        raise ValueError(f"{path}: the training data changed since the checkpoint was written; "
                         "start over with --force")
    return state


def saved_quadratic(state: dict[str, Any]) -> QuadraticFit | None:
    """The quadratic term fitted before the epochs of the checkpointed run
    (a resumed run need not fit it again: minutes on large sets), or None
    where the checkpoint has none (no quadratic term, or written before
    checkpoints kept it)."""
    saved = state.get("quadratic") or {}
    if not saved:
        return None
    terms = {e: QuadraticTerm(t["linear"].numpy().copy(), t["matrix"].numpy().copy())
             for e, t in saved["terms"].items()}
    return QuadraticFit({e: float(v) for e, v in saved["constants"].items()}, terms)


def saved_descriptor(paths) -> str | None:
    """The descriptor preset recorded by the first of `paths` that is a
    readable checkpoint (what `descriptor: auto` chose for the interrupted
    run), else None."""
    for path in map(Path, paths):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return str(state["config"]["descriptor"])
        except Exception:  # absent or unreadable: load() says why when the run resumes from it
            continue
    return None


def _quadratic_state(fitted: QuadraticFit | None) -> dict[str, Any]:
    if fitted is None:
        return {}
    return {"constants": dict(fitted.constants),
            "terms": {e: {"linear": torch.from_numpy(np.array(t.linear, dtype=np.float64)),
                          "matrix": torch.from_numpy(np.array(t.matrix, dtype=np.float64))}
                      for e, t in fitted.terms.items()}}


def _cpu(tree):
    """A deep copy with every tensor on the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return type(tree)((k, _cpu(v)) for k, v in tree.items())
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cpu(v) for v in tree)
    return copy.copy(tree)
