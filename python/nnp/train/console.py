"""What a person watching training sees: progress lines on standard output
(every `log_every` epochs), and on a terminal one bar per model trained,
with the time left estimated per optimiser phase (`EpochClock`)."""

from __future__ import annotations

import statistics
from typing import Callable, Protocol

from nnp.progress import Bar, write_line

Log = Callable[[str], None]

# Seconds of an L-BFGS epoch per second of an Adam epoch, before any L-BFGS
# epoch is measured: one or two full-batch evaluations against a pass of
# two-structure steps; measured on the Si data (docs/training.md).
LBFGS_PER_ADAM_EPOCH = 0.6
RECENT = 20  # epochs whose median duration gives a phase's pace


def print_line(line: str) -> None:
    """The default log of `train`: print and flush (above any bar drawn),
    so that a redirected run shows its progress as it goes."""
    write_line(line)


def labelled(label: str) -> Log:
    """A log that prefixes every line with [label] (the two refit trainings)."""
    return lambda line: print_line(f"[{label}] {line}")


class EpochDisplay(Protocol):
    """Where a run's epoch count, time left and short status go between the
    logged lines: a bar on the terminal, or the parent process of a
    holdout twin."""

    def update(self, epoch: int, epochs: int, status: str, eta: float) -> None: ...

    def close(self) -> None: ...


class TerminalDisplay:
    """A bar of epochs on the terminal (nothing when stdout is not one)."""

    def __init__(self, label: str = "training", position: int = 0):
        self.label, self.position = label, position
        self.bar: Bar | None = None

    def update(self, epoch: int, epochs: int, status: str, eta: float) -> None:
        if self.bar is None:
            self.bar = Bar(epochs, self.label, "epochs", position=self.position, own_eta=True)
        self.bar.update(epoch, status, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochClock:
    """The time left of a run: the epochs left in each phase times that
    phase's median epoch (the last RECENT), plus the evaluations of the
    training set at the logged epochs left. Before the first L-BFGS epoch
    its pace is LBFGS_PER_ADAM_EPOCH times Adam's."""

    def __init__(self, n_adam: int, epochs: int):
        self.n_adam, self.epochs = n_adam, epochs
        self.seconds: dict[bool, list[float]] = {True: [], False: []}  # by "is Adam"
        self.evaluation: list[float] = []

    def epoch_done(self, epoch: int, seconds: float) -> None:
        self.seconds[epoch <= self.n_adam].append(seconds)

    def evaluation_done(self, seconds: float) -> None:
        self.evaluation.append(seconds)

    def remaining(self, epoch: int, logged_left: int) -> float:
        """Seconds left after `epoch` epochs, `logged_left` of the rest logged."""
        adam, lbfgs = self._pace(True), self._pace(False)
        if lbfgs is None:
            lbfgs = LBFGS_PER_ADAM_EPOCH * adam if adam is not None else None
        if adam is None:
            adam = lbfgs / LBFGS_PER_ADAM_EPOCH if lbfgs is not None else None
        if adam is None or lbfgs is None:
            return float("nan")
        left_adam = max(0, self.n_adam - epoch)
        left_lbfgs = self.epochs - max(epoch, self.n_adam)
        evaluation = statistics.median(self.evaluation[-RECENT:]) if self.evaluation else 0.0
        return left_adam * adam + left_lbfgs * lbfgs + logged_left * evaluation

    def _pace(self, adam: bool) -> float | None:
        recent = self.seconds[adam][-RECENT:]
        return statistics.median(recent) if recent else None
