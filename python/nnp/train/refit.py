"""Refitting: the written model trains on every structure, and its holdout
twin, trained the same way without the validation structures, gives the
validation errors.

On a CPU with two or more cores the twin trains alongside, in a forked child
process, which sends back one message: `HoldoutDone` (its result, and its
model as potential-file text) or `HoldoutFailed` (the exception to raise in
the parent).
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from nnp.data import FeaturizedDataset
from nnp.io import potential_file
from nnp.model.network import NNPModel
from nnp.train import checkpoints
from nnp.train.config import TrainConfig
from nnp.train.console import labelled
from nnp.train.loop import TrainResult, train


@dataclass
class Member:
    """One model of a `python -m nnp.train` run: what was written to `output`
    (`final`) and the model whose validation errors are reported (`holdout`:
    its twin trained without the validation structures when refitting, else
    `final` itself). Both None: finished by an earlier run."""

    output: Path
    config: TrainConfig
    final: TrainResult | None
    holdout: TrainResult | None


@dataclass
class HoldoutRun:
    """The arguments of the holdout twin's `train` call."""

    data: FeaturizedDataset
    descriptors: object
    config: TrainConfig
    checkpoint: Path
    resume: bool
    data_digest: str


@dataclass
class HoldoutDone:
    """The child's result: `result` without its model (model None), which
    travels as potential-file text (exact: 17 significant digits)."""

    result: TrainResult
    model_text: str

    def unpacked(self) -> TrainResult:
        model = NNPModel.from_potential_data(potential_file.loads(self.model_text, "<holdout model>"))
        return dataclasses.replace(self.result, model=model)


@dataclass
class HoldoutFailed:
    """The exception that ended the child's training, raised again in the parent."""

    error: Exception


def checkpoint_paths(output: Path) -> list[Path]:
    """The checkpoints of the written model and of its holdout twin."""
    return [checkpoints.path_for(output), Path(f"{output}.holdout.ckpt")]


def twin_in_parallel(config: TrainConfig) -> bool:
    """One training per core. Not on one core (nothing to gain), not with
    CUDA (fork() is unsafe once it is initialised), and not with several
    torch threads per training (they would share the cores, and an OpenMP
    runtime used before fork() can hang in the child)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch.device(config.device).type == "cpu" and cores >= 2 and config.threads == 1


def train_member(data: FeaturizedDataset, descriptors, config: TrainConfig, output: Path, resume: bool,
                 data_digest: str) -> tuple[TrainResult, TrainResult]:
    """(final, holdout): the model to write and the one whose validation
    errors are reported. With refit, the final model trains on every
    structure (config with validation_fraction 0) and the holdout model is
    `train(config)`, each bit for bit what a run of its own gives; on a CPU
    with two or more cores the holdout trains in a forked process alongside."""
    final_ckpt, holdout_ckpt = checkpoint_paths(output)
    if not config.refits:
        result = train(data, descriptors, config, checkpoint=final_ckpt, resume=resume and final_ckpt.exists(),
                       data_digest=data_digest)
        return result, result
    final_config = config.updated({"validation_fraction": 0.0})
    holdout = HoldoutRun(data, descriptors, config, holdout_ckpt, resume and holdout_ckpt.exists(), data_digest)

    def train_final() -> TrainResult:
        return train(data, descriptors, final_config, log=labelled("all data"), checkpoint=final_ckpt,
                     resume=resume and final_ckpt.exists(), data_digest=data_digest)

    if not twin_in_parallel(config):
        twin = train_holdout(holdout)
        return train_final(), twin
    return _alongside(train_final, holdout)


def train_holdout(run: HoldoutRun) -> TrainResult:
    return train(run.data, run.descriptors, run.config, log=labelled("holdout"), checkpoint=run.checkpoint,
                 resume=run.resume, data_digest=run.data_digest)


def _alongside(train_final, holdout: HoldoutRun) -> tuple[TrainResult, TrainResult]:
    """train_final() here while the holdout twin trains in a forked child."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_holdout_process, args=(sender, holdout), daemon=True)
    child.start()
    sender.close()
    try:
        final = train_final()
        try:
            message = receiver.recv()
        except EOFError:
            child.join()
            raise ChildProcessError(f"the holdout run ended without a result (exit code {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.terminate()  # an interrupt: its checkpoint is at most checkpoint_every old
        child.join()
    if isinstance(message, HoldoutFailed):
        raise message.error
    return final, message.unpacked()


def _die_with_parent() -> None:
    """A killed parent must not leave the holdout training on (and writing
    its checkpoint while a resumed run writes it too): Linux's
    PR_SET_PDEATHSIG sends this process SIGTERM when the parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


def _holdout_process(sender: Connection, run: HoldoutRun) -> None:
    """Child-process body: sends HoldoutDone or HoldoutFailed."""
    _die_with_parent()
    try:
        result = train_holdout(run)
        text = potential_file.dumps(result.model.to_potential_data())
        sender.send(HoldoutDone(dataclasses.replace(result, model=None), text))
    except KeyboardInterrupt:
        pass  # the parent reports the interrupt
    except Exception as err:  # noqa: BLE001 - handed to the parent, which raises it
        sender.send(HoldoutFailed(err))
    finally:
        sender.close()
