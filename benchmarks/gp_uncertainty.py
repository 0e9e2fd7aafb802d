"""Does the sparse GP's predictive std (docs/gp.md, "Predictive variance")
flag the structures it predicts badly?

Fits the GP of `nnp train --model gp` (the holdout fit of the configured
split, as the training run does: nnp.train.gp_run.fit_potential) and, for
every training and validation structure, compares through the C++ core
(NNPCalculator) its errors with its per-atom std σ_i:

    |ΔE|/N (meV/atom) and the force RMSE (eV/Å) against
    mean_i σ_i, max_i σ_i and sqrt(Σ_i σ_i²)/N (meV/atom: the std of E/N if
    the atoms' energies were uncorrelated, which they are not)

and prints the means per set, the Spearman rank correlations over the
validation structures and |ΔE|/N divided by sqrt(Σ σ_i²)/N.

    python benchmarks/gp_uncertainty.py [--data examples/si/data/train.xyz] [--config gp.yaml]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from nnp import NNPCalculator  # noqa: E402
from nnp.data import read_structures  # noqa: E402
from nnp.io import potential_file  # noqa: E402
from nnp.train import descriptor_choice, gp_run  # noqa: E402
from nnp.train.config import TrainConfig  # noqa: E402
from nnp.train.training_set import featurize  # noqa: E402


def rows(path: Path, structures, indices) -> np.ndarray:
    """Per structure: |ΔE|/N (meV/atom), force RMSE, mean σ, max σ, sqrt(Σσ²)/N (meV/atom)."""
    out = []
    for s in indices:
        ref_e, ref_f = structures[s].get_potential_energy(), structures[s].get_forces()
        atoms = structures[s].copy()
        atoms.calc = NNPCalculator(path, gp_std=True)
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        std = atoms.calc.results["gp_energy_std"]
        n = len(atoms)
        out.append([1e3 * abs(e - ref_e) / n, np.sqrt(np.mean((f - ref_f) ** 2)), 1e3 * std.mean(),
                    1e3 * std.max(), 1e3 * np.sqrt((std**2).sum()) / n])
    return np.array(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO / "examples/si/data/train.xyz"))
    p.add_argument("--config", help="a training config (model: gp implied)")
    args = p.parse_args(argv)
    config = (TrainConfig.from_yaml(args.config) if args.config else TrainConfig()).updated({"model": "gp"})
    structures = read_structures(args.data)
    elements = tuple(sorted({s for a in structures for s in a.get_chemical_symbols()}))
    _, descriptors = descriptor_choice.resolve(config, elements, structures)  # auto, the default: as nnp train
    t = time.perf_counter()
    data = featurize(structures, descriptors, config)
    result = gp_run.fit_potential(data, descriptors, config)
    print(f"holdout fit: {len(result.train_indices)} train, {len(result.validation_indices)} validation "
          f"structures, gp_sparse {config.gp_sparse}, {time.perf_counter() - t:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = potential_file.write(result.potential, Path(tmp) / "gp.nnp")
        train = rows(path, structures, result.train_indices)
        val = rows(path, structures, result.validation_indices)
    names = ["|dE|/N meV/atom", "F RMSE eV/A", "mean std meV", "max std meV", "sqrt(sum var)/N meV/atom"]
    print(f"{'set':<12}" + "".join(f"{n:>26}" for n in names))
    for name, r in (("train", train), ("validation", val)):
        print(f"{name:<12}" + "".join(f"{v:>26.4g}" for v in r.mean(0)))
    pairs = [(0, 2), (0, 4), (1, 2), (1, 3)]
    print("Spearman over the validation structures: " + ", ".join(
        f"{names[a]} vs {names[b]} {spearmanr(val[:, a], val[:, b])[0]:+.2f}" for a, b in pairs))
    z = val[:, 0] / val[:, 4]
    print(f"|dE|/N over sqrt(sum var)/N, validation: median {np.median(z):.2f}, max {z.max():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
