"""The two optimisation phases of a training run, as objects with one
interface: Adam on minibatches first, then full-batch L-BFGS for the last
`lbfgs_fraction` of the epochs. Both minimise the loss of `Objective`
(nnp.train.loss) over the same training structures."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import torch

from nnp.model.network import NNPModel
from nnp.train import distributed
from nnp.train.config import AUTO_EPOCHS, TrainConfig
from nnp.train.loss import Objective, SquaredErrors, loss_of_rmse

LBFGS_MAX_EVALUATIONS = 20  # loss evaluations per L-BFGS epoch, line search included


class Phase(str, enum.Enum):
    """Which optimiser an epoch belongs to; the value is what the history
    and the checkpoint record."""

    ADAM = "adam"
    LBFGS = "lbfgs"


# `epochs: auto`: at most MAX_AUTO_EPOCHS, and at most EPOCH_ATOM_BUDGET
# atom-epochs, so the cost of the default stops growing with the size of the
# set beyond ~15,000 atoms (the Si set's 13,233 keep 1600; 61,440 water atoms
# get 391). Never fewer than MIN_AUTO_EPOCHS (docs/training.md, "How long").
MAX_AUTO_EPOCHS = 1600
EPOCH_ATOM_BUDGET = 24_000_000
MIN_AUTO_EPOCHS = 100


def auto_epochs(n_atoms: int) -> int:
    """The epochs `auto` gives a training set of `n_atoms` atoms."""
    if n_atoms < 1:
        raise ValueError("auto epochs: the training set has no atoms")
    return max(MIN_AUTO_EPOCHS, min(MAX_AUTO_EPOCHS, round(EPOCH_ATOM_BUDGET / n_atoms)))


def with_epochs(config: TrainConfig, n_atoms: int) -> TrainConfig:
    """`config` with `epochs: auto` replaced by auto_epochs(n_atoms); any
    other value as it is."""
    return config if config.epochs != AUTO_EPOCHS else config.updated({"epochs": auto_epochs(n_atoms)})


def phase_lengths(config: TrainConfig) -> tuple[int, int]:
    """(Adam epochs, L-BFGS epochs): Adam first, full-batch L-BFGS last."""
    if config.epochs == AUTO_EPOCHS:
        raise ValueError("epochs auto has no phases until the training set is known (nnp.train.phases.with_epochs)")
    n_lbfgs = int(round(config.epochs * config.lbfgs_fraction))
    return config.epochs - n_lbfgs, n_lbfgs


@dataclass
class EpochLoss:
    """The training loss of one epoch and the RMSEs the progress log shows."""

    loss: float
    energy_rmse: float
    force_rmse: float


class LbfgsClosure:
    """The full-batch loss and gradient for torch's L-BFGS, remembering the
    last evaluation. With one iteration per epoch, every step() starts by
    evaluating the point where the previous line search ended; answering
    that from memory (same parameters, bit for bit: same loss and gradient)
    nearly halves the L-BFGS time and changes nothing else."""

    def __init__(self, objective: Objective, model: NNPModel, params: list[torch.Tensor]):
        self.objective, self.model, self.params = objective, model, params
        self._last: tuple[torch.Tensor, float, list[torch.Tensor], SquaredErrors] | None = None

    def __call__(self) -> float:
        flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        if self._last is not None and torch.equal(flat, self._last[0]):
            _, loss, grads, sums = self._last
            for p, g in zip(self.params, grads):
                p.grad = g.clone()
            self.objective.last_sums = sums
            return loss
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()
        loss = self.objective.full_batch(self.model)
        wd = self.objective.config.weight_decay
        if wd:  # the L2 penalty whose gradient Adam's weight_decay adds
            penalty = 0.5 * wd * sum((p**2).sum() for p in self.params)
            penalty.backward()
            loss += float(penalty.detach())
        self._last = (flat, loss, [p.grad.detach().clone() for p in self.params], self.objective.last_sums)
        return loss


class AdamPhase:
    """Adam on minibatches of `batch_size` structures in a fresh random
    order each epoch, with a cosine or plateau learning-rate schedule over
    the phase's `n_epochs`."""

    kind = Phase.ADAM

    def __init__(self, objective: Objective, params: list[torch.Tensor], config: TrainConfig, n_epochs: int,
                 generator: torch.Generator):
        self.objective, self.config, self.generator = objective, config, generator
        self.optimizer = torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        if config.lr_schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=n_epochs,
                                                                        eta_min=config.lr_min)
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=config.plateau_factor, patience=config.plateau_patience,
                min_lr=config.lr_min
            )

    def run_epoch(self, model: NNPModel) -> EpochLoss:
        objective, opt = self.objective, self.optimizer
        train_idx = objective.indices
        perm = train_idx[torch.randperm(len(train_idx), generator=self.generator).numpy()]
        sums = SquaredErrors()
        params = [p for group in opt.param_groups for p in group["params"]]
        for start in range(0, len(perm), self.config.batch_size):
            loss, err = objective.batch_loss(model, perm[start : start + self.config.batch_size])
            opt.zero_grad(set_to_none=True)
            if loss.requires_grad:  # sharded: none of the batch on this rank gives no graph
                loss.backward()
            distributed.reduce_gradients(objective.data, params)  # sharded: the batch's gradient
            opt.step()
            sums.add(err)
        energy_rmse, force_rmse = objective.rmse(objective.reduced(sums))
        return EpochLoss(loss_of_rmse(self.config, energy_rmse, force_rmse), energy_rmse, force_rmse)

    def end_epoch(self, selection_loss: float) -> None:
        """Advance the learning-rate schedule (the plateau schedule watches
        the loss that selects the best epoch)."""
        if self.config.lr_schedule == "cosine":
            self.scheduler.step()
        else:
            self.scheduler.step(selection_loss)

    def load_state_dict(self, optimizer: dict[str, Any], scheduler: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(scheduler)


class LbfgsPhase:
    """Full-batch L-BFGS, one iteration (one line search) per epoch."""

    kind = Phase.LBFGS
    scheduler = None

    def __init__(self, objective: Objective, params: list[torch.Tensor], config: TrainConfig, model: NNPModel):
        self.objective = objective
        # No gradient/change tolerances: near an Adam minimum the gradient of
        # a loss of ~1e-4 is below torch's default 1e-7 and L-BFGS would not
        # move at all; the epoch count and `patience` decide when to stop.
        # One iteration per epoch; max_eval bounds the line search (torch's
        # default, 5/4 of max_iter, would leave it no evaluation at all).
        self.optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=1, max_eval=LBFGS_MAX_EVALUATIONS,
                                           history_size=config.lbfgs_history, tolerance_grad=0.0,
                                           tolerance_change=0.0, line_search_fn="strong_wolfe")
        self.closure = LbfgsClosure(objective, model, params)

    def run_epoch(self, model: NNPModel) -> EpochLoss:
        loss = float(self.optimizer.step(self.closure))  # the loss before the step
        # RMSEs of the last point the line search evaluated (usually the accepted one).
        energy_rmse, force_rmse = self.objective.rmse(self.objective.last_sums)
        return EpochLoss(loss, energy_rmse, force_rmse)

    def end_epoch(self, selection_loss: float) -> None:
        """Nothing: L-BFGS has no learning-rate schedule."""

    def load_state_dict(self, optimizer: dict[str, Any], scheduler: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(optimizer)


TrainingPhase = AdamPhase | LbfgsPhase


def start_phase(kind: Phase, model: NNPModel, objective: Objective, config: TrainConfig,
                generator: torch.Generator) -> TrainingPhase:
    """A fresh optimiser for the phase `kind` over `model`'s trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if kind is Phase.ADAM:
        return AdamPhase(objective, params, config, phase_lengths(config)[0], generator)
    return LbfgsPhase(objective, params, config, model)
