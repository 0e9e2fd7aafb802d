"""n2p2's ``scaling.data`` (symmetry-function statistics of the training
set) and the scaling it implies, as our x = (G − center)/width."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnp.convert.n2p2_settings import N2p2Error, N2p2Settings, ScalingKind, ScalingMode, data_lines, integer, number
from nnp.io import potential_file as pf


@dataclass
class ScalingRow:
    gmin: float
    gmax: float
    gmean: float
    gsigma: float | None
    line: int


def read_scaling_data(path: Path, settings: N2p2Settings) -> dict[str, list[ScalingRow]]:
    """Rows of scaling.data per element: a block per element (elements by
    atomic number), one row per function in n2p2's sorted order."""
    rows = data_lines(path, "n2p2's symmetry-function scaling statistics")
    need_sigma = settings.scaling.kind is ScalingKind.SCALESIGMA
    out: dict[str, list[ScalingRow]] = {}
    pos = 0
    for ie, e in enumerate(settings.elements, 1):
        block = []
        for isf in range(1, len(settings.functions[e]) + 1):
            if pos >= len(rows):
                raise N2p2Error(
                    f"{path}: file ends early: expected row {isf} of element {e} "
                    f"({len(settings.functions[e])} functions in input.nn)"
                )
            n, tok = rows[pos]
            pos += 1
            if len(tok) < 5 or (need_sigma and len(tok) < 6):
                want = "6 columns (element, index, min, max, mean, sigma)" if need_sigma else \
                    "at least 5 columns (element, index, min, max, mean[, sigma])"
                raise N2p2Error(f"{path}:{n}: expected {want}, found {len(tok)}")
            ec, idx = integer(path, n, tok[0], "the element index"), integer(path, n, tok[1], "the function index")
            if (ec, idx) != (ie, isf):
                raise N2p2Error(
                    f"{path}:{n}: expected the row of element {ie} ({e}) function {isf}, found {ec} {idx} "
                    "(does scaling.data belong to this input.nn?)"
                )
            gmin, gmax, gmean = (number(path, n, t, w) for t, w in zip(tok[2:5], ("min", "max", "mean")))
            gsigma = number(path, n, tok[5], "sigma") if len(tok) > 5 else None
            if gmin > gmax:
                raise N2p2Error(f"{path}:{n}: min {gmin:g} > max {gmax:g}")
            block.append(ScalingRow(gmin, gmax, gmean, gsigma, n))
        out[e] = block
    if pos != len(rows):
        n, _ = rows[pos]
        raise N2p2Error(
            f"{path}:{n}: more rows than symmetry functions in input.nn "
            f"({sum(len(f) for f in settings.functions.values())})"
        )
    return out


def convert_scaling(rows: list[ScalingRow], mode: ScalingMode, path: Path) -> pf.Scaling:
    """n2p2's scaled input as x = (G − center)/width."""
    center, width = [], []
    span = mode.smax - mode.smin
    for r in rows:
        if mode.kind is ScalingKind.NONE:
            c, w = 0.0, 1.0
        elif mode.kind is ScalingKind.CENTER:
            c, w = r.gmean, 1.0
        elif mode.kind is ScalingKind.SCALESIGMA:
            if not r.gsigma > 0:
                raise N2p2Error(f"{path}:{r.line}: sigma must be > 0 for scale_symmetry_functions_sigma")
            w = r.gsigma / span
            c = r.gmean - mode.smin * w
        else:  # scale, scalecenter: divide by the training range
            if not r.gmax > r.gmin:
                raise N2p2Error(
                    f"{path}:{r.line}: this function had a constant value ({r.gmin:g}) in training; "
                    "n2p2's scaling divides by max − min = 0 here"
                )
            w = (r.gmax - r.gmin) / span
            c = (r.gmin if mode.kind is ScalingKind.SCALE else r.gmean) - mode.smin * w
        center.append(c)
        width.append(w)
    return pf.Scaling(
        np.array(center), np.array(width),
        np.array([r.gmin for r in rows]), np.array([r.gmax for r in rows]),
    )
