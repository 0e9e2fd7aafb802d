"""What a person watching training sees: an epoch line every `log_every`
epochs, and on a terminal one bar, with the time left estimated per
optimiser phase (`EpochClock`). A refit's two trainings (the written model
here, its holdout twin in another process) are one display (`RefitDisplay`):
one bar, and one line per logged epoch holding both."""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from nnp.progress import Bar, elapsed, fmt_time, write_line

Log = Callable[[str], None]

# Seconds of an L-BFGS epoch per second of an Adam epoch, used until an
# L-BFGS epoch is timed (docs/training.md, "What you see while it trains"). With stored
# derivatives an L-BFGS evaluation reads them at memory speed (Si default:
# 0.36); streamed, each evaluation runs the descriptor kernels over the whole
# training set, as an Adam epoch does, and an epoch holds one or more.
LBFGS_PER_ADAM_EPOCH = {False: 0.35, True: 1.0}  # by "derivatives streamed"
RECENT = 20  # epochs whose median duration gives a phase's pace


def print_line(line: str) -> None:
    """The default log of `train`: print and flush (above any bar drawn),
    so that a redirected run shows its progress as it goes."""
    write_line(line)


def labelled(label: str) -> Log:
    """A log that prefixes every line with [label] (the two refit trainings)."""
    return lambda line: print_line(f"[{label}] {line}")


def errors(m, digits: int = 2) -> str:
    """Energy and force RMSE of a Metrics, with their units."""
    return f"E {1000 * m.energy_rmse:{digits + 4}.{digits}f} meV/atom, F {m.force_rmse:.4f} eV/Å"


@dataclass
class EpochReport:
    """A logged epoch: the model as written after it, on the training
    structures (`train`) and the validation structures (`val`, None when
    nothing is held out); `lr` None for L-BFGS, which has no step size to
    report; `eta` the seconds left then."""

    epoch: int
    epochs: int
    phase: str  # "Adam" or "LBFGS"
    lr: float | None
    train: object  # nnp.train.loss.Metrics
    val: object | None
    improved: bool
    eta: float

    def head(self) -> str:
        width = len(str(self.epochs))
        rate = f", lr {self.lr:.1e}" if self.lr is not None else ""
        return f"{f'epoch {self.epoch:{width}d}/{self.epochs} {self.phase}{rate}':<{width * 2 + 24}}"

    def errors(self) -> str:
        """Training and validation errors: 'train/val E a/b meV/atom, F c/d eV/Å'."""
        if self.val is None:
            return f"train {errors(self.train)}"
        t, v = self.train, self.val
        return (f"train/val E {1000 * t.energy_rmse:6.2f}/{1000 * v.energy_rmse:.2f} meV/atom, "
                f"F {t.force_rmse:.4f}/{v.force_rmse:.4f} eV/Å")

    def line(self) -> str:
        return (f"{self.head()}  {self.errors()}  {fmt_time(elapsed())}, ETA {fmt_time(self.eta)}"
                + ("  *" if self.improved else ""))


class EpochDisplay(Protocol):
    """Where a run's epoch count, time left and short status go between the
    logged lines, and where its logged epochs go."""

    def update(self, epoch: int, epochs: int, status: str, eta: float) -> None: ...

    def logged(self, report: EpochReport) -> None: ...

    def close(self) -> None: ...


class TerminalDisplay:
    """A bar of epochs on the terminal (nothing when stdout is not one), and
    the logged epochs as lines through `log`."""

    def __init__(self, label: str = "training", position: int = 0, log: Log = print_line):
        self.label, self.position, self.log = label, position, log
        self.bar: Bar | None = None

    def update(self, epoch: int, epochs: int, status: str, eta: float) -> None:
        if self.bar is None:
            self.bar = Bar(epochs, self.label, "epochs", position=self.position, own_eta=True)
        self.bar.update(epoch, status, eta)

    def logged(self, report: EpochReport) -> None:
        self.log(report.line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochClock:
    """The time left of a run: the epochs left in each phase times that
    phase's median epoch (the last RECENT), plus the evaluations of the
    training set at the logged epochs left. Before the first L-BFGS epoch
    its pace is LBFGS_PER_ADAM_EPOCH (by derivative mode) times Adam's."""

    def __init__(self, n_adam: int, epochs: int, streamed: bool = False):
        self.n_adam, self.epochs = n_adam, epochs
        self.lbfgs_per_adam = LBFGS_PER_ADAM_EPOCH[streamed]
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
            lbfgs = self.lbfgs_per_adam * adam if adam is not None else None
        if adam is None:
            adam = lbfgs / self.lbfgs_per_adam if lbfgs is not None else None
        if adam is None or lbfgs is None:
            return float("nan")
        left_adam = max(0, self.n_adam - epoch)
        left_lbfgs = self.epochs - max(epoch, self.n_adam)
        evaluation = statistics.median(self.evaluation[-RECENT:]) if self.evaluation else 0.0
        return left_adam * adam + left_lbfgs * lbfgs + logged_left * evaluation

    def _pace(self, adam: bool) -> float | None:
        # A phase's first epoch carries one-off work (L-BFGS collates the
        # whole training set in it: 2-3 times a later epoch), so it is left
        # out; alone, it paces Adam (nothing else is known yet), while
        # L-BFGS keeps its pace from Adam's.
        times = self.seconds[adam]
        recent = (times[1:] if len(times) > 1 or not adam else times)[-RECENT:]
        return statistics.median(recent) if recent else None


def fit_status(done: int, total: int, seconds: float) -> tuple[str, float]:
    """The display's status and time left while the quadratic term is
    fitted (`done` of `total` structures after `seconds`): the fit's own
    time left; the epochs' time is not known until one is measured."""
    left = seconds / done * (total - done) if done else math.nan
    return f"fitting the quadratic term: {done}/{total} structures, {fmt_time(left)} left; epochs not yet timed", left


WRITTEN, TWIN = "all data", "holdout"


class RefitDisplay:
    """The written model's training (here) and its holdout twin's (another
    process, whose messages a reader thread passes on) as one display: one
    bar at the slower of the two, with the longer time left, and one line
    per logged epoch, printed when both have logged it:

        epoch 12/48 LBFGS   train/val E (twin) ... F ...  all data E (written) ... F ...  4m10s, ETA 1m02s  *

    (the twin is the model the learning curve shows).

    The twin's other lines are printed with [holdout] in front, except those
    the written model printed word for word (the repulsive core). Every
    method may be called from either thread."""

    def __init__(self, log: Log = print_line):
        self.log = log
        self.lock = threading.RLock()
        self.bar: TerminalDisplay | None = TerminalDisplay("training")
        self.state: dict[str, tuple[int, int, str, float, float]] = {}  # side -> (epoch, epochs, status, eta, when)
        self.waiting: dict[str, dict[int, EpochReport]] = {WRITTEN: {}, TWIN: {}}
        self.finished: set[str] = set()
        self.printed: set[str] = set()

    # ---------------------------------------------------------------- input
    def line(self, side: str, text: str) -> None:
        """A free-form log line of one side."""
        with self.lock:
            if side == TWIN and text in self.printed:
                return
            self.printed.add(text)
            self.log(text if side == WRITTEN else f"[{TWIN}] {text}")

    def update(self, side: str, epoch: int, epochs: int, status: str, eta: float) -> None:
        with self.lock:
            self.state[side] = (epoch, epochs, status, eta, time.perf_counter())
            self._flush()  # the other side's line may have waited for this side to pass its epoch
            self._draw()

    def logged(self, side: str, report: EpochReport) -> None:
        with self.lock:
            self.waiting[side][report.epoch] = report
            self._flush()

    def side_finished(self, side: str) -> None:
        """No more epochs come from `side`: its partner's lines print alone."""
        with self.lock:
            self.finished.add(side)
            self._flush()

    def side(self, side: str) -> "_Side":
        """The EpochDisplay (and log) of one side, for `train`."""
        return _Side(self, side)

    def close(self) -> None:
        with self.lock:
            self.finished.update((WRITTEN, TWIN))
            self._flush()
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    # --------------------------------------------------------------- output
    def _flush(self) -> None:
        """Print, in epoch order, every logged epoch both sides have reached."""
        while True:
            pending = sorted({*self.waiting[WRITTEN], *self.waiting[TWIN]})
            if not pending:
                return
            epoch = pending[0]
            both = {s: self.waiting[s].get(epoch) for s in (WRITTEN, TWIN)}
            missing = [s for s, r in both.items() if r is None]
            if missing and not all(self._past(s, epoch) for s in missing):
                return  # the other side has yet to log this epoch
            for s in (WRITTEN, TWIN):
                self.waiting[s].pop(epoch, None)
            self.log(self._line(both[WRITTEN], both[TWIN]))

    def _past(self, side: str, epoch: int) -> bool:
        """Whether `side` will not log `epoch` (finished, or beyond it without logging it)."""
        return side in self.finished or self.state.get(side, (0,))[0] > epoch

    def _line(self, written: EpochReport | None, twin: EpochReport | None) -> str:
        """The twin's train/val errors (the model of the learning curve),
        then the written model's on all structures; the star: a better
        validation loss."""
        parts = [(twin or written).head()]
        if twin is not None:
            parts.append(twin.errors())
        if written is not None:
            parts.append(f"all data {errors(written.train)}")
        parts.append(f"{fmt_time(elapsed())}, ETA {fmt_time(self._eta())}")
        return "  ".join(parts) + ("  *" if twin is not None and twin.improved else "")

    def _eta(self) -> float:
        """The longer of the two times left, each counted from when it was
        reported; unknown (NaN) while either is."""
        now = time.perf_counter()
        etas = [(eta, when) for (_, _, _, eta, when) in self.state.values()]
        if len(etas) < 2 or not all(math.isfinite(eta) for eta, _ in etas):
            return math.nan
        return max(max(0.0, eta - (now - when)) for eta, when in etas)

    def _draw(self) -> None:
        """The bar at the side behind; its status the twin's (validation
        errors, best epoch) once it trains, else the status of the side behind."""
        if self.bar is None or not self.state:
            return
        epochs = max(s[1] for s in self.state.values())
        behind = min((WRITTEN, TWIN), key=lambda s: (self.state.get(s, (-1,))[0], s != TWIN))
        epoch = max(0, self.state.get(behind, (0,))[0])
        twin = self.state.get(TWIN)
        if twin is not None and twin[0] > 0:
            status = f"{TWIN}: {twin[2]}"
        else:
            status = f"{behind}: {self.state[behind][2]}" if behind in self.state else "starting"
        self.bar.update(epoch, epochs, status, self._eta())


class _Side:
    """One side of a RefitDisplay, as `train` sees its display and log."""

    def __init__(self, display: RefitDisplay, side: str):
        self.display, self.name = display, side

    def log(self, text: str) -> None:
        self.display.line(self.name, text)

    def update(self, epoch: int, epochs: int, status: str, eta: float) -> None:
        self.display.update(self.name, epoch, epochs, status, eta)

    def logged(self, report: EpochReport) -> None:
        self.display.logged(self.name, report)

    def close(self) -> None:
        self.display.side_finished(self.name)
