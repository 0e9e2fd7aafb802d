"""`descriptor: auto`, the default: the cheapest descriptor that fits the data.

The candidates are chosen the same way from the data (CUR, series C), in
order of MD cost: `C64-wide`, whose angular functions the core factorises
(a third of C64's MD cost on Si), `C64`, whose narrow G4 resolve
short-range angles better, and `C96`, the same pool with half as many
functions again (about 1.1 times C64's cost on water: the triplet lists,
not the functions, dominate). On Si the wide set fits as well as the others;
on liquid water it does not, and C96 fits clearly better than C64
(docs/descriptors.md, "The default, auto"; docs/accuracy.md, "Liquid
water"). The data decide: a quadratic model (nnp.model.quadratic, closed
form, so no initial weights and no training noise) is fitted in each
candidate on part of the training split and scored, with the run's own loss
weights, on the rest; the cheapest candidate whose loss is at most
LOSS_TOLERANCE times the best one's is taken. A candidate with too few
labels for its coefficients is not fitted. The run's validation structures
take no part in the choice.
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

# (preset, functions per element), cheapest MD first.
LADDER = (("C64-wide", 64), ("C64", 64), ("C96", 96))
FAST, ACCURATE = LADDER[0][0], LADDER[1][0]
# A loss 10 % higher is a force RMSE ~5 % higher (the force term dominates
# the default loss), for three times faster MD.
LOSS_TOLERANCE = 1.10
# The quadratic fits look at evenly spaced training structures holding about
# this many atoms (three fits of ~15-30 s each on Si, ~2 min in all on water).
CHOICE_MAX_ATOMS = 20_000
INNER_FRACTION = 0.2  # of those, scored rather than fitted
# With fewer labels than this many per coefficient the quadratic fits are
# (nearly) underdetermined: their scores compare nothing, and their
# pseudo-inverse solves are the slowest part of the choice.
MIN_ROWS_PER_COEFFICIENT = 2


@dataclass(frozen=True)
class CandidateShape:
    """What nnp.train.memory needs of a descriptor before the choice: the
    smallest candidate's, so that a run is refused only when none would fit
    (the chosen one is planned again before featurising)."""

    elements: tuple[str, ...]
    cutoff: float = descriptors_mod.STUDY_CUTOFF
    functions: int = min(m for _, m in LADDER)

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
    candidates: tuple[Candidate, ...]  # those fitted and scored, cheapest first (none: too few labels)
    structures: int  # fitted and scored
    seconds: float
    rows: int = 0  # energy and force labels of the fitted structures

    def line(self) -> str:
        if not self.candidates:
            return (f"descriptor auto -> {self.name}: too few labels to compare descriptors on ({self.rows} "
                    f"energies and force components for {quadratic_coefficients(1, LADDER[0][1])} quadratic "
                    "coefficients per element), so the cheapest one")
        best = min(c.loss for c in self.candidates)
        ratios = ", ".join(f"{c.name} {c.loss / best:.2f}" if best > 0 else f"{c.name} -" for c in self.candidates)
        rmse = " / ".join(f"{c.force_rmse:.4f}" for c in self.candidates)
        energy = " / ".join(f"{1000 * c.energy_rmse:.2f}" for c in self.candidates)
        skipped = [n for n, _ in LADDER if n not in {c.name for c in self.candidates}]
        note = f"; {', '.join(skipped)}: too few labels to fit" if skipped else ""
        return (f"descriptor auto -> {self.name}: quadratic models on {self.structures} training structures, "
                f"loss / the best: {ratios} (the cheapest within {LOSS_TOLERANCE:g}; F RMSE {rmse} eV/Å, "
                f"E {energy} meV/atom{note}) in {fmt_time(self.seconds)}")


def quadratic_coefficients(n_elements: int, functions: int) -> int:
    """Coefficients of the quadratic model in a candidate of `functions`
    per element (b and the upper triangle of A per element)."""
    return n_elements * (functions + functions * (functions + 1) // 2)


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
    fitted = [name for name, m in LADDER
              if rows >= MIN_ROWS_PER_COEFFICIENT * quadratic_coefficients(len(elements), m)]
    if not fitted:
        return Choice(FAST, (), len(sample), time.perf_counter() - t, rows)
    if not scored:
        raise ValueError("descriptor auto needs at least two training structures to compare descriptors on: "
                         f"name one (--descriptor {ACCURATE} or {FAST})")
    candidates = tuple(score(name, fit, scored, elements, config) for name in fitted)
    best = min(c.loss for c in candidates)
    name = next(c.name for c in candidates if c.loss <= LOSS_TOLERANCE * best)
    return Choice(name, candidates, len(sample), time.perf_counter() - t, rows)


def resolve(config: TrainConfig, elements, structures: list, log: Log = print_line):
    """(preset name, DescriptorSet) of the run: config.descriptor, or with
    `auto` the choice above (made by rank 0 under torchrun)."""
    name = config.descriptor
    if name == AUTO_DESCRIPTOR:
        choice = distributed.on_main(lambda: choose(structures, elements, config))
        log(choice.line())
        name = choice.name
    return name, descriptors_mod.resolve(name, elements, structures)
