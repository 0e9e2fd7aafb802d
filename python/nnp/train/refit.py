"""Refitting: the written model trains on every structure, and its holdout
twin, trained the same way without the validation structures, gives the
validation errors.

On a CPU with two or more cores the twin trains alongside, in a forked child
process, which sends its progress (`TwinLine`, `TwinProgress`, `TwinEpoch`:
a thread of the parent passes them to a RefitDisplay as they come, so the
two trainings are one display, with one line per epoch) and ends with one
message: `HoldoutDone` (its result, and its model as
potential-file text) or `HoldoutFailed` (what went wrong, as text: an
exception object need not survive pickling). The parent looks at the
child after every epoch of its own: when the twin failed or its process
died (killed, out of memory), training stops there, checkpointed, with
`HoldoutTwinFailed`, a one-line error that says how to resume. Stopping, not
training on without the twin, because what kills the twin (divergence,
memory) usually concerns the run beside it too, and the checkpoints keep
the work; a written model that finished before the twin failed is still
written, without validation errors (the `final` of the error).
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from nnp.data import FeaturizedDataset
from nnp.io import potential_file
from nnp.model.network import NNPModel
from nnp.train import checkpoints, distributed
from nnp.train.config import TrainConfig
from nnp.train.console import TWIN, WRITTEN, EpochReport, RefitDisplay, TerminalDisplay, labelled
from nnp.train.loop import TrainResult, train


@dataclass
class Member:
    """One model of a `python -m nnp.train` run: what was written to `output`
    (`final`) and the model whose validation errors are reported (`holdout`:
    its twin trained without the validation structures when refitting, else
    `final` itself). Both None: finished by an earlier run. `holdout` None
    beside a `final`: the holdout twin failed after the written model had
    finished (`twin_error` says how), so validation errors are not measured."""

    output: Path
    config: TrainConfig
    final: TrainResult | None
    holdout: TrainResult | None
    twin_error: str = ""


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
    """The exception that ended the child's training, as text: its type's
    name and its message."""

    kind: str
    message: str

    def __str__(self) -> str:
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.kind}: {first}" if first else self.kind


@dataclass
class TwinLine:
    """A log line of the twin."""

    text: str


@dataclass
class TwinProgress:
    """The twin's epoch, time left and status."""

    epoch: int
    epochs: int
    status: str
    eta: float


@dataclass
class TwinEpoch:
    """A logged epoch of the twin."""

    report: EpochReport


PROGRESS_INTERVAL = 0.5  # seconds between the twin's progress messages (its logged epochs always go)


class _PipeDisplay:
    """The twin's EpochDisplay and log: messages to the parent."""

    def __init__(self, sender: Connection):
        self.sender, self.last = sender, -float("inf")

    def log(self, line: str) -> None:
        self.sender.send(TwinLine(line))

    def update(self, epoch: int, epochs: int, status: str, eta: float) -> None:
        now = time.perf_counter()
        if now - self.last >= PROGRESS_INTERVAL or epoch == epochs:
            self.last = now
            self.sender.send(TwinProgress(epoch, epochs, status, eta))

    def logged(self, report: EpochReport) -> None:
        self.sender.send(TwinEpoch(report))

    def close(self) -> None:
        """Nothing: the parent closes the display."""


class HoldoutTwinFailed(ChildProcessError):
    """The holdout twin failed or its process died. `final`: the written
    model's result when it had finished by then (it is written, without
    validation errors), else None (training stopped, checkpointed)."""

    def __init__(self, what: str, final: TrainResult | None = None):
        super().__init__(what)
        self.final = final


def checkpoint_paths(output: Path) -> list[Path]:
    """The checkpoints of the written model and of its holdout twin."""
    return [checkpoints.path_for(output), Path(f"{output}.holdout.ckpt")]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask: a batch
    scheduler's allocation, taskset), else all of the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def kernel_threads(config: TrainConfig, ranks_on_node: int = 1) -> int:
    """Threads of the streamed kernels per training: `kernel_threads`, or
    (0) the usable cores shared among the trainings that run at once."""
    if config.kernel_threads:
        return config.kernel_threads
    trainings = ranks_on_node * (2 if config.refits and twin_in_parallel(config) else 1)
    return max(1, usable_cores() // trainings)


def twin_in_parallel(config: TrainConfig) -> bool:
    """One training per core. Not on one core (nothing to gain), not with
    CUDA (fork() is unsafe once it is initialised), and not with several
    torch threads per training (they would share the cores, and an OpenMP
    runtime used before fork() can hang in the child). Nor in a
    data-parallel run: the ranks train the two one after the other."""
    if distributed.context() is not None:
        return False
    return torch.device(config.device).type == "cpu" and usable_cores() >= 2 and config.threads == 1


def train_member(data: FeaturizedDataset, descriptors, config: TrainConfig, output: Path, resume: bool,
                 data_digest: str) -> tuple[TrainResult, TrainResult]:
    """(final, holdout): the model to write and the one whose validation
    errors are reported. With refit, the final model trains on every
    structure (config with validation_fraction 0) and the holdout model is
    `train(config)`, each bit for bit what a run of its own gives; on a CPU
    with two or more cores the holdout trains in a forked process alongside
    (its failure raises HoldoutTwinFailed)."""
    final_ckpt, holdout_ckpt = checkpoint_paths(output)
    # Data-parallel: what rank 0 sees (its checkpoints) decides for all ranks.
    final_saved, holdout_saved = distributed.on_main(lambda: (final_ckpt.exists(), holdout_ckpt.exists()))
    if not config.refits:
        result = train(data, descriptors, config, checkpoint=final_ckpt, resume=resume and final_saved,
                       data_digest=data_digest)
        return result, result
    final_config = config.updated({"validation_fraction": 0.0})
    holdout = HoldoutRun(data, descriptors, config, holdout_ckpt, resume and holdout_saved, data_digest)

    def train_final(between_epochs: Callable[[], None] | None = None, display=None) -> TrainResult:
        log, display = (display.log, display) if display is not None else \
            (labelled(WRITTEN), TerminalDisplay(WRITTEN, log=labelled(WRITTEN)))
        return train(data, descriptors, final_config, log=log, checkpoint=final_ckpt,
                     resume=resume and final_saved, data_digest=data_digest, between_epochs=between_epochs,
                     display=display)

    if not twin_in_parallel(config):
        twin = train_holdout(holdout)
        return train_final(), twin
    return _alongside(train_final, holdout, final_ckpt)


def train_holdout(run: HoldoutRun, pipe: _PipeDisplay | None = None) -> TrainResult:
    """The twin's training; in the child, its log and progress go to the parent through `pipe`."""
    log, display = (pipe.log, pipe) if pipe is not None else \
        (labelled(TWIN), TerminalDisplay(TWIN, log=labelled(TWIN)))
    return train(run.data, run.descriptors, run.config, log=log, checkpoint=run.checkpoint, resume=run.resume,
                 data_digest=run.data_digest, display=display)


def _alongside(train_final, holdout: HoldoutRun, final_ckpt: Path) -> tuple[TrainResult, TrainResult]:
    """train_final() here while the holdout twin trains in a forked child,
    which is looked at after every epoch here; one display for both."""
    display = RefitDisplay()
    twin = _Twin(holdout, display)
    try:
        try:
            final = train_final(twin.check, display.side(WRITTEN))
        except HoldoutTwinFailed as err:
            raise HoldoutTwinFailed(f"{err}; the model on all data stopped after its last epoch, checkpointed in "
                                    f"{final_ckpt}: rerun the same command with --resume to continue, or set "
                                    "refit: false (and --force) to train without the twin") from None
        try:
            return final, twin.result()
        except HoldoutTwinFailed as err:
            raise HoldoutTwinFailed(str(err), final) from None
    finally:
        twin.close()
        display.close()


class _Twin:
    """The forked process of the holdout twin: a thread here passes its
    messages to the display as they come and keeps the last one."""

    def __init__(self, holdout: HoldoutRun, display: RefitDisplay):
        ctx = multiprocessing.get_context("fork")
        self.receiver, sender = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_holdout_process, args=(sender, holdout), daemon=True)
        self.process.start()  # forked before the thread starts: the child has none of it
        sender.close()
        self.side = display.side(TWIN)
        self.message: HoldoutDone | HoldoutFailed | None = None
        self.ended = threading.Event()  # set when the last message came, or the pipe ended without it
        self.reader = threading.Thread(target=self._read, name="holdout twin", daemon=True)
        self.reader.start()

    def check(self) -> None:
        """Raise HoldoutTwinFailed if the twin failed or its process ended
        without a result; else return at once (it may still be training)."""
        if not self.ended.is_set():
            return
        if isinstance(self.message, HoldoutFailed):
            raise HoldoutTwinFailed(f"the holdout run failed: {self.message}")
        if self.message is None:
            self.process.join()
            raise HoldoutTwinFailed(_ended(self.process.exitcode))

    def result(self) -> TrainResult:
        """The twin's result, waiting for it if need be."""
        self.ended.wait()
        self.check()
        assert isinstance(self.message, HoldoutDone)
        return self.message.unpacked()

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()  # an interrupt: its checkpoint is at most checkpoint_every old
        self.process.join()
        self.reader.join(timeout=5)  # the pipe ends with the process
        self.receiver.close()

    def _read(self) -> None:
        """The reader thread: show each message, until the last or the
        pipe's end (the process died)."""
        try:
            while True:
                message = self.receiver.recv()
                if isinstance(message, TwinLine):
                    self.side.log(message.text)
                elif isinstance(message, TwinProgress):
                    self.side.update(message.epoch, message.epochs, message.status, message.eta)
                elif isinstance(message, TwinEpoch):
                    self.side.logged(message.report)
                else:
                    self.message = message
                    return
        except (EOFError, OSError):
            return  # the process ended without its last message (or close() closed the pipe)
        finally:
            self.side.close()
            self.ended.set()


def _ended(exitcode: int | None) -> str:
    """How the twin's process ended without a result, in words."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else f"signal {-exitcode}"
        why = " (the system's out-of-memory killer sends it when memory runs out)" if -exitcode == signal.SIGKILL else ""
        return f"the holdout run was killed by {name}{why}"
    return f"the holdout run ended without a result (exit code {exitcode})"


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
        result = train_holdout(run, _PipeDisplay(sender))
        text = potential_file.dumps(result.model.to_potential_data())
        sender.send(HoldoutDone(dataclasses.replace(result, model=None), text))
    except KeyboardInterrupt:
        pass  # the parent reports the interrupt
    except Exception as err:  # noqa: BLE001 - handed to the parent, which reports it
        sender.send(HoldoutFailed(type(err).__name__, str(err)))
    finally:
        sender.close()
