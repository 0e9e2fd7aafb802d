"""Which explored frames to label.

Every explored frame falls in one class, by its largest atomic force
deviation max_devi_f = max_i ε_i (eV/Å) and trust window [lo, hi):

* accurate: max_devi_f < lo, the committee agrees;
* candidate: lo <= max_devi_f < hi, worth a DFT label;
* failed: max_devi_f >= hi, a non-finite deviation or position, or two atoms
  closer than the inner radius of their pair's repulsive core (where the
  core alone acts: the MD left physics). Counted, never labelled.

With `uncertainty: gp` the same classes apply to max_gp_std, the largest
per-atom std of the GP's atomic energy (eV), instead of max_devi_f.

Among the candidates, `farthest_point` picks frames that are far apart in
descriptor space (each frame: the mean and standard deviation over its atoms
of the scaled descriptors of the committee's first member), so a long run
stuck in one basin does not fill the quota with near-copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from nnp.io.potential_file import PotentialData

ACCURATE, CANDIDATE, FAILED = "accurate", "candidate", "failed"


@dataclass(frozen=True)
class Verdict:
    kind: str  # ACCURATE, CANDIDATE or FAILED
    reason: str = ""  # for FAILED: "nan", "above_hi" or "core"


def core_radii(potential: PotentialData) -> dict[tuple[str, str], float]:
    """Inner radius of each element pair's repulsive core (both orders)."""
    radii = {}
    for r in potential.repulsion:
        radii[(r.element_a, r.element_b)] = radii[(r.element_b, r.element_a)] = r.r_inner
    return radii


def inside_core(atoms: Atoms, radii: dict[tuple[str, str], float]) -> bool:
    """Whether any pair of atoms is closer than its pair's core inner radius."""
    if not radii:
        return False
    cutoff = max(radii.values())
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    symbols = np.array(atoms.get_chemical_symbols())
    for a, b, dist in zip(symbols[i], symbols[j], d):
        if dist < radii.get((a, b), 0.0):
            return True
    return False


def classify(atoms: Atoms, lo: float, hi: float, radii: dict[tuple[str, str], float],
             key: str = "max_devi_f") -> Verdict:
    devi = float(atoms.info.get(key, math.nan))
    if not math.isfinite(devi) or not np.all(np.isfinite(atoms.positions)):
        return Verdict(FAILED, "nan")
    if devi >= hi:
        return Verdict(FAILED, "above_hi")
    if inside_core(atoms, radii):
        return Verdict(FAILED, "core")
    return Verdict(ACCURATE) if devi < lo else Verdict(CANDIDATE)


def frame_features(frames: Sequence[Atoms], potential: PotentialData) -> np.ndarray:
    """(n_frames, d): per element, the mean and the standard deviation over
    the frame's atoms of the descriptors scaled as the network sees them
    (zeros for an element the frame lacks)."""
    descriptors = potential.descriptors
    rows = []
    for atoms in frames:
        feats = descriptors.featurize(atoms, derivatives=False)
        parts = []
        for element in descriptors.elements:
            s = potential.models[element].scaling
            G = np.asarray(feats[element].G)
            x = (G - s.center) / s.width if len(G) else np.zeros((1, descriptors.size(element)))
            parts += [x.mean(axis=0), x.std(axis=0)]
        rows.append(np.concatenate(parts))
    return np.array(rows)


def farthest_point(features: np.ndarray, k: int, first: int, reference: np.ndarray | None = None) -> list[int]:
    """k row indices of `features`: `first`, then each time the row farthest
    (Euclidean) from every row chosen so far and from every `reference` row
    (frames already labelled). Fewer than k rows: all of them."""
    n = len(features)
    if n == 0 or k <= 0:
        return []
    chosen = [first]
    dist = np.linalg.norm(features - features[first], axis=1)
    if reference is not None and len(reference):
        for r in reference:
            dist = np.minimum(dist, np.linalg.norm(features - r, axis=1))
        dist[first] = 0.0
    while len(chosen) < min(k, n):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0.0:  # only copies of chosen rows are left
            nxt = next(i for i in range(n) if i not in chosen)
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(features - features[nxt], axis=1))
        dist[chosen] = 0.0
    return chosen


def select(candidates: Sequence[Atoms], k: int, potential: PotentialData, key: str = "max_devi_f") -> list[int]:
    """Indices of the candidates to label: the one with the largest
    uncertainty `key` first, then farthest-point in descriptor space."""
    if not candidates:
        return []
    features = frame_features(candidates, potential)
    first = int(np.argmax([a.info[key] for a in candidates]))
    return farthest_point(features, k, first)
