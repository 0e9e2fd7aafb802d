"""`descriptor: auto`, the default: the fastest descriptor that fits the data.

The two candidates are chosen the same way from the data (CUR, series C):
`C64-wide`, whose angular functions the core factorises (a third of the MD
cost), and `C64`, whose narrow G4 resolve short-range angles better. On Si
the wide set fits as well as the narrow one; on liquid water it does not
(docs/descriptors.md, "The default, auto"; docs/accuracy.md, "A faster
descriptor"). The data decide: a quadratic
model (nnp.model.quadratic, closed form, so no initial weights and no
training noise) is fitted in each candidate on part of the training split
and scored, with the run's own loss weights, on the rest; the fast candidate
is taken unless its loss is more than LOSS_TOLERANCE times the other's.
The run's validation structures take no part in the choice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from nnp import _core
from nnp import descriptors as descriptors_mod
from nnp.data import split
from nnp.descriptors.selection import even_sample
from nnp.model import quadratic
from nnp.progress import fmt_time
from nnp.train import distributed
from nnp.train.config import AUTO_DESCRIPTOR, TrainConfig
from nnp.train.console import Log, print_line
from nnp.train.initial_model import build_model, fit_quadratic_term
from nnp.train.loss import evaluate
from nnp.train.training_set import featurize

FAST, ACCURATE = "C64-wide", "C64"
# A loss 10 % higher is a force RMSE ~5 % higher (the force term dominates
# the default loss), for three times faster MD.
LOSS_TOLERANCE = 1.10
# The quadratic fits look at evenly spaced training structures holding about
# this many atoms (two fits of ~15 s each on Si, ~1 min on water).
CHOICE_MAX_ATOMS = 20_000
INNER_FRACTION = 0.2  # of those, scored rather than fitted
# With fewer labels than this many per coefficient the quadratic fits are
# (nearly) underdetermined: their scores compare nothing, and their
# pseudo-inverse solves are the slowest part of the choice.
MIN_ROWS_PER_COEFFICIENT = 2


@dataclass(frozen=True)
class CandidateShape:
    """What nnp.train.memory needs of a descriptor, the same for both
    candidates, so that a run too large to fit is refused before the choice."""

    elements: tuple[str, ...]
    cutoff: float = descriptors_mod.STUDY_CUTOFF
    functions: int = 64  # per element, in C64 and C64-wide alike

    def size(self, element: str) -> int:
        return self.functions


@dataclass(frozen=True)
class Candidate:
    """One candidate's quadratic model, scored on the inner validation part."""

    name: str
    loss: float
    energy_rmse: float  # eV/atom
    force_rmse: float  # eV/Å


@dataclass(frozen=True)
class Choice:
    name: str
    fast: Candidate | None  # None: too few labels to compare (`rows`)
    accurate: Candidate | None
    structures: int  # fitted and scored
    seconds: float
    rows: int = 0  # energy and force labels of the fitted structures

    def line(self) -> str:
        if self.fast is None or self.accurate is None:
            return (f"descriptor auto -> {self.name}: too few labels to compare descriptors on ({self.rows} "
                    f"energies and force components for {quadratic_coefficients(1)} quadratic coefficients per "
                    "element), so the faster one")
        ratio = self.fast.loss / self.accurate.loss if self.accurate.loss > 0 else math.inf
        why = "within" if self.name == FAST else "beyond"
        return (f"descriptor auto -> {self.name}: quadratic models on {self.structures} training structures, "
                f"{FAST} loss {ratio:.2f} x {ACCURATE}'s ({why} {LOSS_TOLERANCE:g}; F RMSE "
                f"{self.fast.force_rmse:.4f} vs {self.accurate.force_rmse:.4f} eV/Å, E "
                f"{1000 * self.fast.energy_rmse:.2f} vs {1000 * self.accurate.energy_rmse:.2f} meV/atom) in "
                f"{fmt_time(self.seconds)}")


def quadratic_coefficients(n_elements: int) -> int:
    """Coefficients of the quadratic model in either candidate (b and the
    upper triangle of A per element)."""
    m = CandidateShape(()).functions
    return n_elements * (m + m * (m + 1) // 2)


def training_structures(structures: list, config: TrainConfig, rc: float) -> list:
    """The structures the run will train on: split_structures' training
    part (structures without a neighbour within `rc` always train, the
    split is drawn from the others)."""
    condensed = [i for i, a in enumerate(structures) if _has_neighbour(a, rc)]
    if not condensed:
        return list(structures)
    train, _ = split(len(condensed), config.validation_fraction, config.split_seed_used)
    return [structures[condensed[i]] for i in train]


def _has_neighbour(atoms, rc: float) -> bool:
    """Whether any atom has a neighbour within `rc` (the core's neighbour list)."""
    offsets, _, _ = _core.neighbor_list(np.ascontiguousarray(atoms.positions, dtype=np.float64),
                                        np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
                                        [bool(p) for p in atoms.pbc], rc)
    return bool(offsets[-1] > 0)


def score(name: str, fit: list, scored: list, elements, config: TrainConfig) -> Candidate:
    """The quadratic model of preset `name` fitted on `fit`, its loss on `scored`."""
    descriptors = descriptors_mod.resolve(name, elements, fit)
    data = featurize(fit + scored, descriptors, config, streamed=True)
    fit_idx, scored_idx = np.arange(len(fit)), np.arange(len(fit), len(fit) + len(scored))
    model = build_model(data, descriptors, config, fit_idx)
    fitted = fit_quadratic_term(model, data, fit_idx, config, log=lambda *_: None)
    metrics = evaluate(quadratic.blend(model, fitted, 1.0), data, scored_idx, config)
    return Candidate(name, metrics.loss, metrics.energy_rmse, metrics.force_rmse)


def choose(structures: list, elements, config: TrainConfig) -> Choice:
    """The candidate `descriptor: auto` stands for on these data."""
    t = time.perf_counter()
    config = config.updated({"isolated_atom_energies": {}})
    sample = even_sample(training_structures(structures, config, descriptors_mod.STUDY_CUTOFF), CHOICE_MAX_ATOMS)
    fit_sub, scored_sub = split(len(sample), INNER_FRACTION, config.split_seed_used)
    fit, scored = [sample[i] for i in fit_sub], [sample[i] for i in scored_sub]
    rows = sum(1 + 3 * len(a) for a in fit)
    if rows < MIN_ROWS_PER_COEFFICIENT * quadratic_coefficients(len(elements)):
        return Choice(FAST, None, None, len(sample), time.perf_counter() - t, rows)
    if not scored:
        raise ValueError("descriptor auto needs at least two training structures to compare descriptors on: "
                         f"name one (--descriptor {ACCURATE} or {FAST})")
    fast, accurate = (score(name, fit, scored, elements, config) for name in (FAST, ACCURATE))
    name = FAST if fast.loss <= LOSS_TOLERANCE * accurate.loss else ACCURATE
    return Choice(name, fast, accurate, len(sample), time.perf_counter() - t)


def resolve(config: TrainConfig, elements, structures: list, log: Log = print_line):
    """(preset name, DescriptorSet) of the run: config.descriptor, or with
    `auto` the choice above (made by rank 0 under torchrun)."""
    name = config.descriptor
    if name == AUTO_DESCRIPTOR:
        choice = distributed.on_main(lambda: choose(structures, elements, config))
        log(choice.line())
        name = choice.name
    return name, descriptors_mod.resolve(name, elements, structures)
