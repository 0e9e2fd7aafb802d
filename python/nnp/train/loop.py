"""`train`: one model, trained on one split of the data as a config says.

The run goes through the phases of nnp.train.phases in turn (Adam, then
L-BFGS). After every epoch the model is evaluated on the validation
structures, and the epoch with the lowest validation loss (the training loss
when nothing is held out) is the model returned. The whole state is
checkpointed every `checkpoint_every` seconds, so that a resumed run ends
with the same model as an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from nnp.data import FeaturizedDataset
from nnp.model import quadratic
from nnp.model.network import NNPModel
from nnp.progress import fmt_time
from nnp.train import checkpoints
from nnp.train.config import TrainConfig
from nnp.train.console import Log, print_line
from nnp.train.initial_model import build_model, fit_quadratic_term
from nnp.train.loss import Metrics, Objective, evaluate
from nnp.train.phases import EpochLoss, Phase, TrainingPhase, phase_lengths, start_phase
from nnp.train.training_set import shortest_distance, split_structures


@dataclass
class TrainResult:
    model: NNPModel
    train: Metrics
    validation: Metrics | None
    best_epoch: int
    train_indices: np.ndarray
    validation_indices: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    # With a quadratic term: the validation errors of its two parts alone
    # ("network", "quadratic"); empty otherwise.
    parts: dict[str, Metrics] = field(default_factory=dict)


@dataclass
class Progress:
    """Where a run is, and its best epoch so far: what a checkpoint holds
    besides the model, the optimiser and the random generator."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int = 0  # chosen among the trained epochs (>= 1)
    best_loss: float = math.inf
    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # phases (Phase values) ended early by `patience`
    stale: int = 0  # epochs of this phase without a better selection loss

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> "Progress":
        return cls(saved["best_state"], saved["best_epoch"], saved["best_loss"], saved["epoch"], saved["history"],
                   saved["stopped"])


def train(
    data: FeaturizedDataset,
    descriptors,
    config: TrainConfig,
    log: Log = print_line,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    data_digest: str = "",
    between_epochs: Callable[[], None] | None = None,
) -> TrainResult:
    """Train on `data` as `config` says; returns the best model (lowest
    validation loss; training loss when nothing is held out).

    With `checkpoint`, the whole training state is saved there (atomically)
    after every epoch; with `resume` training continues from it and ends with
    the same model as an uninterrupted run. `between_epochs()` is called
    after every epoch: an exception it raises stops training, after a
    checkpoint of that epoch (how the holdout twin's failure stops the run
    beside it).
    """
    config.check()
    device = torch.device(config.device)
    fit_idx, train_idx, val_idx = split_structures(data, config)
    model = build_model(data, descriptors, config, fit_idx).to(device)
    shortest = data.shortest_pair_distances()
    for core in model.repulsion:
        pair = shortest.get((core.element_a, core.element_b), shortest.get((core.element_b, core.element_a)))
        seen = f"this pair's shortest training distance {pair:.3f} Å" if pair is not None else \
            f"the pair never meets in the data; shortest of any pair {shortest_distance(data):.3f} Å"
        log(f"repulsive core {core.element_a}-{core.element_b}: ZBL, switched off between {core.r_inner:g} "
            f"and {core.r_outer:g} Å ({seen})")
    generator = torch.Generator().manual_seed(config.seed)
    progress = Progress(copy.deepcopy(model.state_dict()))
    saved = None
    if resume:
        saved = checkpoints.load(checkpoint, config, data_digest, device)
        model.load_state_dict(saved["model"])
        progress = Progress.from_checkpoint(saved)
        generator.set_state(saved["generator"])
        log(f"resuming from {checkpoint} after epoch {progress.epoch}")

    objective = Objective(data, train_idx, config, device)
    validation = Objective(data, val_idx, config, device)  # keeps the validation batches
    # The quadratic term depends on the data and the scaling only: fitted once,
    # before training, so that the best epoch is chosen on the model written
    # (the blend), from its fixed validation predictions.
    fitted = fit_quadratic_term(model.cpu(), data, train_idx, config, log) if config.quadratic_weight > 0 else None
    model.to(device)
    mix = None
    if fitted is not None and len(val_idx):
        mix = _validation_mix(model, fitted, validation, config.quadratic_weight, device)
    run = _Run(model, data, config, objective, validation, mix, progress, generator, log, checkpoint, data_digest)
    run.between_epochs = between_epochs
    run.all_phases(saved)
    return _result(model, fitted, progress.best_state, progress.best_epoch, data, config, train_idx, val_idx,
                   progress.history)


def _validation_mix(model: NNPModel, fitted: quadratic.QuadraticFit, validation: Objective, weight: float,
                    device: torch.device) -> tuple[float, list[dict[str, torch.Tensor]]]:
    """The quadratic model's fixed predictions on the validation batches,
    with the weight they get in the blend (`evaluate`'s `mix`)."""
    q_model = quadratic.blend(model.cpu(), fitted, 1.0).to(device)
    model.to(device)
    return (weight,
            [{k: v.detach() for k, v in q_model(b, forces=True, stress=True).items()} for b in validation.chunks()])


def _result(model: NNPModel, fitted: quadratic.QuadraticFit | None, best_state: dict[str, torch.Tensor],
            best_epoch: int, data: FeaturizedDataset, config: TrainConfig, train_idx: np.ndarray,
            val_idx: np.ndarray, history: list[dict[str, Any]]) -> TrainResult:
    """The best epoch's model (blended with the quadratic term) and its errors."""
    model.load_state_dict(best_state)
    model.eval()
    model.cpu()
    parts: dict[str, Metrics] = {}
    if fitted is not None:
        network = model
        model = quadratic.blend(network, fitted, config.quadratic_weight)
        if len(val_idx):
            parts = {"network": evaluate(network, data, val_idx, config),
                     "quadratic": evaluate(quadratic.blend(network, fitted, 1.0), data, val_idx, config)}
    train_metrics = evaluate(model, data, train_idx, config)
    val_metrics = evaluate(model, data, val_idx, config) if len(val_idx) else None
    return TrainResult(model, train_metrics, val_metrics, best_epoch, train_idx, val_idx, history, parts)


class _Run:
    """The epochs of one `train` call: the phases in turn, validation and
    the choice of the best epoch, checkpoints and the progress log."""

    def __init__(self, model: NNPModel, data: FeaturizedDataset, config: TrainConfig, objective: Objective,
                 validation: Objective, mix, progress: Progress, generator: torch.Generator, log: Log,
                 checkpoint: str | os.PathLike | None, data_digest: str):
        self.model, self.data, self.config = model, data, config
        self.objective, self.validation, self.mix = objective, validation, mix
        self.progress, self.generator = progress, generator
        self.log, self.checkpoint, self.data_digest = log, checkpoint, data_digest
        self.log_every = config.log_every or max(1, round(config.epochs / 50))
        self.live = log is print_line and sys.stdout.isatty()  # redraw one line between log lines
        self.t0 = self.last_checkpoint = time.perf_counter()
        self.first_epoch = progress.epoch + 1
        self.between_epochs: Callable[[], None] | None = None

    def all_phases(self, saved: dict[str, Any] | None) -> None:
        """Adam, then L-BFGS, each until its last epoch or until `patience`
        stops it; a resumed run continues inside the phase it was in."""
        p, n_adam = self.progress, phase_lengths(self.config)[0]
        for kind, end in ((Phase.ADAM, n_adam), (Phase.LBFGS, self.config.epochs)):
            if p.epoch >= end or kind.value in p.stopped:
                continue
            if kind is Phase.LBFGS:
                p.epoch = max(p.epoch, n_adam)  # an Adam phase stopped early skips its remaining epochs
            phase = start_phase(kind, self.model, self.objective, self.config, self.generator)
            p.stale = 0
            if saved is not None and saved["phase"] == kind.value:  # resuming inside this phase
                phase.load_state_dict(saved["optimizer"], saved["scheduler"])
                p.stale = saved["stale"]
            while not self.epoch(phase) and p.epoch < end:
                pass

    def epoch(self, phase: TrainingPhase) -> bool:
        """Train one epoch and record it; True when `patience` stops the phase."""
        p, config = self.progress, self.config
        p.epoch += 1
        self.model.train()
        loss = phase.run_epoch(self.model)
        self.model.eval()
        val = None
        if len(self.validation.indices):
            val = evaluate(self.model, self.data, self.validation.indices, config, batches=self.validation.chunks(),
                           mix=self.mix)
        selection_loss = val.loss if val is not None else loss.loss
        improved = selection_loss < p.best_loss
        if improved:
            p.best_loss, p.best_epoch = selection_loss, p.epoch
            p.best_state = copy.deepcopy(self.model.state_dict())
            p.stale = 0
        else:
            p.stale += 1
        lr = phase.optimizer.param_groups[0]["lr"]
        phase.end_epoch(selection_loss)
        p.history.append(_history_entry(p.epoch, phase.kind, lr, loss, val))
        if not math.isfinite(loss.loss):
            raise FloatingPointError(f"training diverged at epoch {p.epoch} (loss {loss.loss}); lower learning_rate")
        stop = config.patience > 0 and p.stale >= config.patience
        if stop:
            p.stopped.append(phase.kind.value)
        self._save(phase, stop or p.epoch == config.epochs)
        self._log_epoch(phase.kind, loss, val, lr, improved, stop)
        if self.between_epochs is not None:
            try:
                self.between_epochs()
            except Exception:
                self._save(phase, True)  # this epoch is kept: --resume continues after it
                raise
        if stop:
            kind = phase.kind.value
            self.log(f"{kind}: no better validation loss in {config.patience} epochs; {kind} stops here")
        return stop

    def _save(self, phase: TrainingPhase, now: bool) -> None:
        """A checkpoint when `now`, or when checkpoint_every has passed since the last."""
        p = self.progress
        due = time.perf_counter() - self.last_checkpoint >= self.config.checkpoint_every
        if self.checkpoint is None or not (due or now):
            return
        self.last_checkpoint = time.perf_counter()
        checkpoints.save(
            self.checkpoint, config=self.config, data_digest=self.data_digest, epoch=p.epoch, phase=phase.kind.value,
            model=self.model, optimizer=phase.optimizer, scheduler=phase.scheduler, best_state=p.best_state,
            best_epoch=p.best_epoch, best_loss=p.best_loss, history=p.history, generator=self.generator,
            stale=p.stale, stopped=p.stopped,
        )

    def _log_epoch(self, kind: Phase, loss: EpochLoss, val: Metrics | None, lr: float, improved: bool,
                   stop: bool) -> None:
        epoch, epochs = self.progress.epoch, self.config.epochs
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / (epoch - self.first_epoch + 1) * (epochs - epoch)
        line = (
            f"epoch {epoch:{len(str(epochs))}d}/{epochs} {kind.value:5s} loss {loss.loss:.3e}"
            f"  train E {1000 * loss.energy_rmse:6.2f} F {loss.force_rmse:.4f}"
            + (f"  val E {1000 * val.energy_rmse:6.2f} meV/atom F {val.force_rmse:.4f} eV/Å "
               f"(MAE {1000 * val.energy_mae:.2f}, {val.force_mae:.4f})" if val else "")
            + f"  lr {lr:.1e}  {fmt_time(elapsed)} ETA {fmt_time(eta)}{' *' if improved else ''}"
        )
        if epoch % self.log_every == 0 or epoch == epochs or epoch == self.first_epoch or stop:
            self.log(("\r\033[K" if self.live else "") + line)
        elif self.live:
            print("\r\033[K" + line, end="", flush=True)


def _history_entry(epoch: int, kind: Phase, lr: float, loss: EpochLoss, val: Metrics | None) -> dict[str, Any]:
    """One epoch of the learning curve (the report plots it; checkpoints keep it)."""
    nan = math.nan
    return dict(epoch=epoch, optimizer=kind.value, lr=lr, train_loss=loss.loss, train_energy_rmse=loss.energy_rmse,
                train_force_rmse=loss.force_rmse,
                val_loss=val.loss if val else nan,
                val_energy_rmse=val.energy_rmse if val else nan,
                val_force_rmse=val.force_rmse if val else nan,
                val_energy_mae=val.energy_mae if val else nan,
                val_force_mae=val.force_mae if val else nan)
