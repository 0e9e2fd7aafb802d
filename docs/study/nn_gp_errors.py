"""The figure docs/study/nn_gp_errors.png: validation errors vs descriptor
length of the networks of the 2026-11-21 run (docs/study/errors.csv) and of
the GPs of the 2026-12-06 run (docs/study/gp/errors.csv), on the same data,
seed and validation fraction, drawn by nnp.study's own plot_errors.

    python docs/study/nn_gp_errors.py
"""

import csv
from pathlib import Path

from nnp.study.plots import plot_errors

HERE = Path(__file__).resolve().parent
KEYS = ("val_energy_mae", "val_energy_rmse", "val_force_mae", "val_force_rmse")


def rows(path: Path, model: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [{"series": r["series"], "length": int(r["length"]), "model": model,
                 **{k: float(r[k]) if r[k] else float("nan") for k in KEYS}} for r in csv.DictReader(fh)]


if __name__ == "__main__":
    both = rows(HERE / "errors.csv", "nn") + rows(HERE / "gp" / "errors.csv", "gp")
    plot_errors(both, HERE / "nn_gp_errors.png")
    print(f"wrote {HERE / 'nn_gp_errors.png'}")
