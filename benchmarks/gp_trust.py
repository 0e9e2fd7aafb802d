"""Where to put `nnp learn`'s trust window with `uncertainty: gp`
(docs/active-learning.md, "One GP instead of a committee").

Fits the GP of `nnp train --model gp` (the holdout fit of the configured
split: nnp.train.gp_run.fit_potential), then prints, per set of frames, the
distribution of each frame's largest per-atom GP std max_i σ_i (meV; what
the loop classifies) and the fraction of frames at or above given bounds:

* the training and validation structures of the split;
* rattled 8-atom crystals (the loop's seed frames: strain up to ±3 %,
  Gaussian displacements of 0.05, 0.1, 0.2 Å);
* random packings (the loop's liquid starts: atoms at random, >= 2 Å apart);
* LAMMPS MD driven by the GP itself (the loop's exploration, explore.explore
  with uncertainty gp): 8-atom crystal at 300, 900, 1500 K and the liquid
  start at 2000 K.

    python benchmarks/gp_trust.py [--data examples/si/data/train.xyz] [--config gp.yaml] [--steps 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from nnp import NNPCalculator  # noqa: E402
from nnp.data import read_structures  # noqa: E402
from nnp.io import potential_file  # noqa: E402
from nnp.learn import explore  # noqa: E402
from nnp.learn.config import RunSpec  # noqa: E402
from nnp.train import descriptor_choice, gp_run  # noqa: E402
from nnp.train.config import TrainConfig  # noqa: E402
from nnp.train.training_set import featurize  # noqa: E402

BOUNDS_MEV = (50.0, 500.0)  # the loop's default trust.lo and trust.hi for gp


def max_std(path: Path, frames) -> np.ndarray:
    """max_i σ_i (meV) of every frame, through NNPCalculator."""
    calc = NNPCalculator(str(path), gp_std=True)
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        out.append(1e3 * float(np.max(calc.get_property("gp_energy_std", atoms))))
    return np.array(out)


def md_frames(path: Path, steps: int, tmp: Path) -> dict[str, list]:
    runs = [RunSpec(structure="crystal", temperatures=(300.0, 900.0, 1500.0), steps=steps, every=25),
            RunSpec(structure="liquid", temperatures=(2000.0,), steps=steps, every=25)]
    results = explore.explore(runs, [path], ["Si"], tmp / "md", 11, print, "gp")
    return {f"MD {r.name}" + (" (stopped)" if r.error else ""): r.frames for r in results}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO / "examples/si/data/train.xyz"))
    p.add_argument("--config", help="a training config (model: gp implied)")
    p.add_argument("--steps", type=int, default=500, help="MD steps per run (a frame every 25)")
    args = p.parse_args(argv)
    config = (TrainConfig.from_yaml(args.config) if args.config else TrainConfig()).updated({"model": "gp"})
    structures = read_structures(args.data)
    _, descriptors = descriptor_choice.resolve(config, ("Si",), structures)  # auto, the default: as nnp train
    t = time.perf_counter()
    result = gp_run.fit_potential(featurize(structures, descriptors, config), descriptors, config)
    print(f"holdout fit: {len(result.train_indices)} train, {len(result.validation_indices)} validation "
          f"structures, gp_sparse {config.gp_sparse}, gp_delta {config.gp_delta:g} eV, "
          f"{time.perf_counter() - t:.0f} s")
    rng = np.random.default_rng(0)
    spec = RunSpec(structure="liquid")
    with tempfile.TemporaryDirectory() as tmp:
        path = potential_file.write(result.potential, Path(tmp) / "gp.nnp")
        sets = {"train": [structures[i] for i in result.train_indices],
                "validation": [structures[i] for i in result.validation_indices]}
        for stdev in (0.05, 0.1, 0.2):
            sets[f"rattled {stdev:g} Å"] = explore.rattled_crystals(20, (1, 1, 1), stdev, 0.03, "Si", 5.469,
                                                                   int(100 * stdev))
        sets["random packing"] = [explore.random_packing(spec, rng) for _ in range(20)]
        sets.update(md_frames(path, args.steps, Path(tmp)))
        print(f"{'set':<28}{'frames':>7}{'median':>9}{'p90':>9}{'max':>9}  (max_i σ_i, meV)"
              + "".join(f"{f'>= {b:g}':>10}" for b in BOUNDS_MEV))
        for name, frames in sets.items():
            s = max_std(path, frames)
            if not len(s):
                print(f"{name:<28}{0:>7}")
                continue
            print(f"{name:<28}{len(s):>7}{np.median(s):>9.1f}{np.percentile(s, 90):>9.1f}{s.max():>9.1f}"
                  + " " * 18 + "".join(f"{np.mean(s >= b):>10.2f}" for b in BOUNDS_MEV))
    return 0


if __name__ == "__main__":
    sys.exit(main())
