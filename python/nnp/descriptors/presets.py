"""Descriptor presets: the study's series A and B (docs/study.md), their
-wide (G5) variants, the element-weighted series W, and the names of every
series (the data-driven S and C series are built in nnp.descriptors.selection)."""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

import numpy as np

from nnp.descriptors.functions import G2, G4, G5, W2, W4, W5, DescriptorSet, SymmetryFunction

# The study (docs/science.md) uses G2 with R_s = 0 and narrow G4 with
# λ = ±1, ζ ∈ {1, 2, 4, 16}, r_c = 6 Å. Series A drops η values (radial and
# angular); series B keeps 16 radial and 6 angular η values and drops ζ values.
STUDY_CUTOFF = 6.0
# 16 radial widths, geometric from a broad 0.003 Å⁻² (reaches r_c) to 2 Å⁻²
# (first shell only).
RADIAL_ETAS = tuple(float(x) for x in np.geomspace(0.003, 2.0, 16))
# 6 angular widths: exp(−η(R_ij²+R_ik²+R_jk²)) spans first to third shell.
ANGULAR_ETAS = (0.0005, 0.005, 0.012, 0.025, 0.05, 0.1)
ZETAS = (1.0, 2.0, 4.0, 16.0)
LENGTHS = (16, 28, 40, 52, 64)
# Series C also comes longer (not -wide: its pool holds too few G5 keys):
# on liquid water a quadratic model in C96 is 26 % better in force than in
# C64 (docs/accuracy.md, "Liquid water").
SELECTED_LENGTHS = LENGTHS + (96, 128)
# length -> (radial count, angular η count, ζ count)
SERIES = {
    "A": {16: (0, 2, 4), 28: (4, 3, 4), 40: (8, 4, 4), 52: (12, 5, 4), 64: (16, 6, 4)},
    "B": {16: (16, 6, 0), 28: (16, 6, 1), 40: (16, 6, 2), 52: (16, 6, 3), 64: (16, 6, 4)},
}
# Which ζ values a series-B point keeps, by count.
ZETA_SUBSETS = {0: (), 1: (1.0,), 2: (1.0, 4.0), 3: (1.0, 2.0, 4.0), 4: ZETAS}
# The -wide (G5) presets use ζ ∈ {1, 2, 3, 4}: the core factorises G5 with
# integer ζ at a cost growing as (max ζ)³ (docs/descriptors.md), so ζ = 16
# would be slower than the triple loop. Same count of ζ values, same lengths.
WIDE_ZETAS = (1.0, 2.0, 3.0, 4.0)
WIDE_ZETA_SUBSETS = {0: (), 1: (1.0,), 2: (1.0, 4.0), 3: (1.0, 2.0, 4.0), 4: WIDE_ZETAS}
DATA_SERIES = "S"  # series A with data-driven shifted radial functions (nnp.descriptors.selection)
SELECTED_SERIES = "C"  # chosen from a candidate pool by CUR on the training data
# Series A's parameter grid as element-weighted functions (W2, W4; -wide: W5),
# weights = atomic numbers: the same length for any number of elements
# (docs/descriptors.md, "Element-resolved or weighted").
WEIGHTED_SERIES = "W"


def _spread(values: Sequence[float], count: int) -> tuple[float, ...]:
    """`count` values spread evenly over `values` (ends included)."""
    if count == 0:
        return ()
    if count >= len(values):
        return tuple(values)
    idx = np.round(np.linspace(0, len(values) - 1, count)).astype(int)
    return tuple(values[i] for i in idx)


def build(
    elements: Iterable[str],
    radial_etas: Sequence[float],
    angular_etas: Sequence[float],
    zetas: Sequence[float],
    *,
    wide: bool = False,
    rc: float = STUDY_CUTOFF,
    cutoff_function: str = "cos",
    weighted: bool = False,
) -> DescriptorSet:
    """G2 for every (η, neighbour element), then G4/G5 for every
    (η, ζ, λ, neighbour pair); the same set for every centre element.
    `weighted`: W2 per η and W4/W5 per (η, ζ, λ) instead (weights: Z)."""
    elements = tuple(elements)
    if weighted:
        angular_w = W5 if wide else W4
        funcs_w: list[SymmetryFunction] = [W2(eta, 0.0, rc) for eta in radial_etas]
        funcs_w += [angular_w(eta, zeta, lam, 0.0, rc) for eta in angular_etas for zeta in zetas for lam in (1, -1)]
        return DescriptorSet(elements, {e: tuple(funcs_w) for e in elements}, cutoff_function)
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    angular = G5 if wide else G4
    funcs: list[SymmetryFunction] = [G2(e, eta, 0.0, rc) for e in elements for eta in radial_etas]
    funcs += [
        angular(p, eta, zeta, lam, 0.0, rc)
        for p in pairs
        for eta in angular_etas
        for zeta in zetas
        for lam in (1, -1)
    ]
    return DescriptorSet(elements, {e: tuple(funcs) for e in elements}, cutoff_function)


def preset(name: str, elements: Iterable[str] = ("Si",)) -> DescriptorSet:
    """A study preset: ``A16 … A64``, ``B16 … B64``, optionally ``-wide`` (G5);
    ``W16 … W64`` (optionally ``-wide``): series A as element-weighted functions.

    Narrow presets use ζ ∈ {1, 2, 4, 16} (series B: subsets of it); the -wide
    ones ζ ∈ {1, 2, 3, 4} (see `WIDE_ZETAS`), everything else is the same.
    """
    name = canonical_preset(name)
    base, _, suffix = name.partition("-")
    series = "A" if base[:1] == WEIGHTED_SERIES else base[:1]
    if series not in SERIES:
        raise ValueError(f"unknown descriptor preset {name!r} for preset(): it is chosen from the data, "
                         "use nnp.descriptors.resolve with the training structures")
    n_rad, n_eta, n_zeta = SERIES[series][int(base[1:])]
    wide = suffix == "wide"
    if series == "A":
        zetas = WIDE_ZETAS if wide else ZETAS
    else:
        zetas = (WIDE_ZETA_SUBSETS if wide else ZETA_SUBSETS)[n_zeta]
    return build(
        elements,
        _spread(RADIAL_ETAS, n_rad),
        _spread(ANGULAR_ETAS, n_eta),
        zetas,
        wide=wide,
        weighted=base[0] == WEIGHTED_SERIES,
    )


def preset_names() -> list[str]:
    """Study presets (A, B), data-driven ones (S), each also -wide, and
    data-selected ones (C); the weighted ones are `weighted_preset_names`."""
    names = [f"{s}{n}" for s in (*SERIES, DATA_SERIES) for n in LENGTHS]
    selected = [f"{SELECTED_SERIES}{n}" for n in SELECTED_LENGTHS]
    return (names + [n + "-wide" for n in names] + selected
            + [f"{SELECTED_SERIES}{n}-wide" for n in LENGTHS])


def weighted_preset_names() -> list[str]:
    """The element-weighted presets ``W16 … W64`` and their -wide variants."""
    names = [f"{WEIGHTED_SERIES}{n}" for n in LENGTHS]
    return names + [n + "-wide" for n in names]


def canonical_preset(name: str) -> str:
    """The preset's own spelling of `name`, in any case ("c64" -> "C64",
    "a40-WIDE" -> "A40-wide"); an unknown name raises a ValueError that
    suggests the closest names."""
    known = preset_names() + weighted_preset_names()
    by_lower = {n.lower(): n for n in known}
    found = by_lower.get(str(name).strip().lower())
    if found is not None:
        return found
    close = [by_lower[n] for n in difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.5)]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ValueError(f"unknown descriptor preset {name!r}; {hint}Presets are series A, B, S, W (lengths "
                     f"{', '.join(map(str, LENGTHS))}, each also -wide) and C (e.g. A64, B40-wide, C52); "
                     "docs/descriptors.md lists them")
