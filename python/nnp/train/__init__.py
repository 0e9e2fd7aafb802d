"""Train a potential on energies, forces and stress and write it as a potential file.

    python -m nnp.train --data train.xyz --output Si.nnp [--config cfg.yaml]
        [--descriptor A52] [--epochs N] [--seed S] [--device cuda] [--ensemble N]
        [--report DIR] [--resume] [--force]

Adam on minibatches runs first, then (lbfgs_fraction of the epochs)
full-batch L-BFGS, both on the loss defined in nnp.train.loss. A fraction of the structures
is held out for validation, and the model with the lowest validation loss is
kept. With `refit` (the default) that model is the holdout twin: the model
written to OUTPUT trains on every structure with the same settings,
alongside it in a second process, and the holdout model's validation errors
are what the summary and the report give as validation errors. The training
state is checkpointed to OUTPUT.ckpt (and OUTPUT.holdout.ckpt) every
checkpoint_every seconds and after the last epoch; --resume continues from
there.

The modules, in the order a run uses them:

    config         TrainConfig: every setting and its checks
    training_set   the data plus isolated atoms, featurised; the split
    initial_model  initialised networks, scaling, the repulsive core, the quadratic term
    loss           the loss (Objective), errors and Metrics (evaluate)
    phases         the Adam and L-BFGS phases
    loop           train(): the phases, best-epoch selection, checkpoints, log
    checkpoints    the training state on disk
    refit          the holdout twin (in a forked child process)
    outputs        provenance, summary, report, committee files
    cli            python -m nnp.train
"""

from __future__ import annotations

from nnp.train import checkpoints
from nnp.train.cli import main, parse_args
from nnp.train.config import TrainConfig
from nnp.train.initial_model import CORE_MARGIN, build_model, core_repulsion, fit_quadratic_term
from nnp.train.loop import TrainResult, train
from nnp.train.loss import Metrics, evaluate, metrics_by_config_type
from nnp.train.outputs import mean_output, member_outputs, provenance
from nnp.train.refit import Member, checkpoint_paths, train_member
from nnp.train.training_set import featurize, isolated_structures, shortest_distance, with_isolated_atoms

__all__ = [
    "CORE_MARGIN", "Member", "Metrics", "TrainConfig", "TrainResult", "build_model", "checkpoint_paths",
    "checkpoints", "core_repulsion", "evaluate", "featurize", "fit_quadratic_term", "isolated_structures",
    "main", "mean_output", "member_outputs", "metrics_by_config_type", "parse_args", "provenance",
    "shortest_distance", "train", "train_member", "with_isolated_atoms",
]
