"""Accuracy against descriptor length, without training noise: the quadratic
model alone (nnp.model.quadratic, closed form) in series-C descriptors of M
functions per element, fitted on the training frames of the default split
(validation_fraction 0.1, seed 0) and scored on its validation frames.

    python benchmarks/quadratic_ladder.py [--data FILE] [--lengths 52 64 96]

Default data: the shared liquid-water set. Lengths beyond the preset names
(C16 … C128) are selected the same way (nnp.descriptors.selection.selected).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ase.data import atomic_numbers

from nnp.data import read_structures
from nnp.descriptors.selection import selected
from nnp.model import quadratic
from nnp.train import TrainConfig
from nnp.train.initial_model import build_model, fit_quadratic_term
from nnp.train.loss import evaluate
from nnp.train.training_set import featurize, split_structures

WATER = Path(__file__).resolve().parents[2] / "shared" / "data" / "water-deepmd" / "train.xyz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=WATER)
    p.add_argument("--lengths", type=int, nargs="+", default=[52, 64, 96])
    args = p.parse_args()
    structures = read_structures(args.data)
    elements = tuple(sorted({e for a in structures for e in a.get_chemical_symbols()}, key=atomic_numbers.get))
    config = TrainConfig(quadratic_weight=1.0, refit=False, threads=1)
    config.check()
    for m in args.lengths:
        t = time.perf_counter()
        ds = selected(m, elements, structures)
        data = featurize(structures, ds, config, streamed=True)
        fit_idx, train_idx, val_idx = split_structures(data, config)
        model = build_model(data, ds, config, fit_idx)
        fitted = fit_quadratic_term(model, data, train_idx, config, log=lambda *_: None)
        q = quadratic.blend(model, fitted, 1.0)
        tr, va = evaluate(q, data, train_idx, config), evaluate(q, data, val_idx, config)
        print(f"C{m}: {len(train_idx)} train / {len(val_idx)} validation frames; train RMSE E "
              f"{1000 * tr.energy_rmse:.3f} meV/atom F {tr.force_rmse:.4f} eV/Å; validation RMSE E "
              f"{1000 * va.energy_rmse:.3f} F {va.force_rmse:.4f}, MAE E {1000 * va.energy_mae:.3f} "
              f"F {va.force_mae:.4f}; {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
