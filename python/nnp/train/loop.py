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
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from nnp.data import FeaturizedDataset
from nnp.model import quadratic
from nnp.model.network import NNPModel
from nnp.progress import elapsed, fmt_time
from nnp.train import checkpoints, distributed
from nnp.train.config import TrainConfig
from nnp.train.console import (EpochClock, EpochDisplay, EpochReport, Log, TerminalDisplay, errors, fit_status,
                               print_line)
from nnp.train.initial_model import build_model, fit_quadratic_term
from nnp.train.loss import Metrics, Objective, evaluate
from nnp.train.phases import EpochLoss, Phase, TrainingPhase, phase_lengths, start_phase, with_epochs
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
    display: EpochDisplay | None = None,
) -> TrainResult:
    """Train on `data` as `config` says; returns the best model (lowest
    validation loss; training loss when nothing is held out).

    With `checkpoint`, the whole training state is saved there (atomically)
    after every epoch; with `resume` training continues from it and ends with
    the same model as an uninterrupted run. `between_epochs()` is called
    after every epoch: an exception it raises stops training, after a
    checkpoint of that epoch (how the holdout twin's failure stops the run
    beside it). `display` shows the epochs and the logged epochs (default:
    a bar on the terminal when `log` is print_line; without a display the
    logged epochs are lines through `log`).
    """
    config.check()
    config = with_epochs(config, int(data.n_atoms.sum()))  # the command line has done it for the whole file
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
        # Sharded: rank 0 reads it (nodes need not share a file system).
        where = torch.device("cpu") if distributed.context() is not None else device
        saved = distributed.on_main(lambda: checkpoints.load(checkpoint, config, data_digest, where))
        model.load_state_dict(saved["model"])
        progress = Progress.from_checkpoint(saved)
        generator.set_state(saved["generator"])
        log(f"resuming from {checkpoint} after epoch {progress.epoch}")

    objective = Objective(data, train_idx, config, device)
    validation = Objective(data, val_idx, config, device)  # keeps the validation batches
    # The quadratic term depends on the data and the scaling only: fitted once,
    # before training, so that the best epoch is chosen on the model written
    # (the blend), from its fixed validation predictions.
    if display is None and log is print_line:
        display = TerminalDisplay()
    fitted = None
    if config.quadratic_weight > 0:
        fitted = checkpoints.saved_quadratic(saved) if saved is not None else None
        if fitted is not None:
            log("quadratic term: as fitted before the interrupted run's epochs (from its checkpoint)")
        else:
            fitted = fit_quadratic_term(model.cpu(), data, train_idx, config, log,
                                        progress=_fit_progress(display, config))
    model.to(device)
    mixes = Mixes()
    if fitted is not None:
        if display is not None:
            display.update(0, config.epochs, "the quadratic term's predictions on the training set", math.nan)
        mixes = Mixes(_fixed_mix(model, fitted, validation, config.quadratic_weight, device) if len(val_idx) else None,
                      _fixed_mix(model, fitted, objective, config.quadratic_weight, device))
    run = _Run(model, data, config, objective, validation, mixes, progress, generator, log, checkpoint, data_digest)
    run.between_epochs, run.display, run.quadratic = between_epochs, display, fitted
    try:
        run.all_phases(saved)
    finally:
        if display is not None:
            display.close()
    return _result(model, fitted, progress.best_state, progress.best_epoch, data, config, train_idx, val_idx,
                   progress.history)


def _fit_progress(display: EpochDisplay | None, config: TrainConfig) -> Callable[[int, int], None] | None:
    """The quadratic fit's progress callback (structures done, total) for `display`."""
    if display is None:
        return None
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        status, _ = fit_status(done, total, time.perf_counter() - start)
        display.update(0, config.epochs, status, math.nan)  # the epochs' time is not known yet

    return progress


@dataclass
class Mixes:
    """The quadratic model's share of the written model's predictions on
    the validation and the training batches (`evaluate`'s `mix`); None
    without a quadratic term."""

    validation: tuple[float, list[dict[str, torch.Tensor]]] | None = None
    train: tuple[float, list[dict[str, torch.Tensor]]] | None = None


def _fixed_mix(model: NNPModel, fitted: quadratic.QuadraticFit, objective: Objective, weight: float,
               device: torch.device) -> tuple[float, list[dict[str, torch.Tensor]]]:
    """The quadratic model's fixed predictions on `objective`'s batches,
    with the weight they get in the blend (`evaluate`'s `mix`)."""
    q_model = quadratic.blend(model.cpu(), fitted, 1.0).to(device)
    model.to(device)
    return (weight,
            [{k: v.detach() for k, v in q_model(b, forces=True, stress=True).items()} for b in objective.chunks()])


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
    _fill_best_epoch(history, best_epoch, train_metrics)
    return TrainResult(model, train_metrics, val_metrics, best_epoch, train_idx, val_idx, history, parts)


def _fill_best_epoch(history: list[dict[str, Any]], best_epoch: int, trained: Metrics) -> None:
    """The returned model's training errors at its epoch of the learning
    curve, where that epoch was not logged (the same model, evaluated as
    written)."""
    for entry in history:
        if entry["epoch"] == best_epoch and not math.isfinite(entry.get("model_train_energy_rmse", math.nan)):
            entry.update(model_train_loss=trained.loss, model_train_energy_rmse=trained.energy_rmse,
                         model_train_force_rmse=trained.force_rmse, model_train_energy_mae=trained.energy_mae,
                         model_train_force_mae=trained.force_mae)


class _Run:
    """The epochs of one `train` call: the phases in turn, validation and
    the choice of the best epoch, checkpoints and the progress log.

    The log's and the learning curve's train and validation errors are the
    model as written (with the quadratic term's share, `mixes`), after the
    epoch. The validation structures are evaluated every epoch (they choose
    the best); the training structures at the logged epochs only, an extra
    evaluation that reads the model and changes nothing in training."""

    def __init__(self, model: NNPModel, data: FeaturizedDataset, config: TrainConfig, objective: Objective,
                 validation: Objective, mixes: Mixes, progress: Progress, generator: torch.Generator, log: Log,
                 checkpoint: str | os.PathLike | None, data_digest: str):
        self.model, self.data, self.config = model, data, config
        self.objective, self.validation, self.mixes = objective, validation, mixes
        self.progress, self.generator = progress, generator
        self.log, self.checkpoint, self.data_digest = log, checkpoint, data_digest
        self.log_every = config.log_every or max(1, round(config.epochs / 50))
        self.last_checkpoint = time.perf_counter()
        self.first_epoch = progress.epoch + 1
        self.clock = EpochClock(phase_lengths(config)[0], config.epochs, data.is_streamed)
        self.between_epochs: Callable[[], None] | None = None
        self.display: EpochDisplay | None = None
        self.quadratic: quadratic.QuadraticFit | None = None  # kept in the checkpoints
        self.last_trained: Metrics | None = None  # at the last logged epoch

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
        t = time.perf_counter()
        self.model.train()
        loss = phase.run_epoch(self.model)
        self.model.eval()
        val = None
        if len(self.validation.indices):
            val = evaluate(self.model, self.data, self.validation.indices, config, batches=self.validation.chunks(),
                           mix=self.mixes.validation)
        self.clock.epoch_done(p.epoch, time.perf_counter() - t)
        selection_loss = val.loss if val is not None else loss.loss
        # Sharded: every decision below follows rank 0's (equal, reduced) losses.
        selection_loss, loss.loss = distributed.broadcast(self.data, (selection_loss, loss.loss))
        improved = selection_loss < p.best_loss
        if improved:
            p.best_loss, p.best_epoch = selection_loss, p.epoch
            p.best_state = copy.deepcopy(self.model.state_dict())
            p.stale = 0
        else:
            p.stale += 1
        lr = phase.optimizer.param_groups[0]["lr"]
        phase.end_epoch(selection_loss)
        if not math.isfinite(loss.loss):
            p.history.append(_history_entry(p.epoch, phase.kind, lr, loss, val, None))
            raise FloatingPointError(f"training diverged at epoch {p.epoch} (loss {loss.loss}); lower learning_rate")
        stop = config.patience > 0 and p.stale >= config.patience
        logged = self._logged(p.epoch) or stop
        trained = self._evaluate_train() if logged else None
        p.history.append(_history_entry(p.epoch, phase.kind, lr, loss, val, trained))
        if stop:
            p.stopped.append(phase.kind.value)
        self._save(phase, stop or p.epoch == config.epochs)
        self._show(phase.kind, loss, val, trained, lr, improved)
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

    def _logged(self, epoch: int) -> bool:
        """Whether `epoch` gets a log line (and an evaluation of the training set)."""
        return epoch % self.log_every == 0 or epoch == self.config.epochs or epoch == self.first_epoch

    def _evaluate_train(self) -> Metrics:
        """The model as written, on the training structures (the batches
        L-BFGS uses: collated once)."""
        t = time.perf_counter()
        m = evaluate(self.model, self.data, self.objective.indices, self.config, batches=self.objective.chunks(),
                     mix=self.mixes.train)
        self.clock.evaluation_done(time.perf_counter() - t)
        return m

    def _save(self, phase: TrainingPhase, now: bool) -> None:
        """A checkpoint when `now`, or when checkpoint_every has passed since the last."""
        p = self.progress
        due = time.perf_counter() - self.last_checkpoint >= self.config.checkpoint_every
        if self.checkpoint is None or not (due or now) or not distributed.is_main():
            return
        self.last_checkpoint = time.perf_counter()
        checkpoints.save(
            self.checkpoint, config=self.config, data_digest=self.data_digest, epoch=p.epoch, phase=phase.kind.value,
            model=self.model, optimizer=phase.optimizer, scheduler=phase.scheduler, best_state=p.best_state,
            best_epoch=p.best_epoch, best_loss=p.best_loss, history=p.history, generator=self.generator,
            stale=p.stale, stopped=p.stopped, quadratic=self.quadratic,
        )

    def _show(self, kind: Phase, loss: EpochLoss, val: Metrics | None, trained: Metrics | None, lr: float,
              improved: bool) -> None:
        """The display of every epoch, and the logged epochs (`trained` given)."""
        epoch, epochs = self.progress.epoch, self.config.epochs
        logged_left = sum(self._logged(e) for e in range(epoch + 1, epochs + 1))
        eta = self.clock.remaining(epoch, logged_left)
        if trained is not None:
            self.last_trained = trained
        if self.display is not None:
            shown = f"val {errors(val)}" if val is not None else \
                f"train {errors(self.last_trained)}" if self.last_trained is not None else "training"
            self.display.update(epoch, epochs, f"{shown}, best epoch {self.progress.best_epoch}", eta)
        if trained is None:
            return
        # L-BFGS has no step size of its own to report (its lr is a constant 1).
        report = EpochReport(epoch, epochs, PHASE_NAMES[kind], lr if kind is Phase.ADAM else None, trained, val,
                             improved, eta)
        if self.display is not None:
            self.display.logged(report)
        else:
            self.log(report.line())


PHASE_NAMES = {Phase.ADAM: "Adam", Phase.LBFGS: "LBFGS"}


def _history_entry(epoch: int, kind: Phase, lr: float, loss: EpochLoss, val: Metrics | None,
                   trained: Metrics | None) -> dict[str, Any]:
    """One epoch of the learning curve (the report plots it; checkpoints
    keep it). train_loss, train_energy_rmse, train_force_rmse: what the
    optimiser saw (the network alone, accumulated over the epoch's steps);
    model_train_*: the model as written after the epoch, on the training
    structures (logged epochs; NaN at the others); val_*: the same model
    on the validation structures."""
    nan = math.nan
    entry = dict(epoch=epoch, optimizer=kind.value, lr=lr, train_loss=loss.loss, train_energy_rmse=loss.energy_rmse,
                 train_force_rmse=loss.force_rmse)
    for prefix, m in (("model_train", trained), ("val", val)):
        entry.update({f"{prefix}_loss": m.loss if m else nan,
                      f"{prefix}_energy_rmse": m.energy_rmse if m else nan,
                      f"{prefix}_force_rmse": m.force_rmse if m else nan,
                      f"{prefix}_energy_mae": m.energy_mae if m else nan,
                      f"{prefix}_force_mae": m.force_mae if m else nan})
    return entry
