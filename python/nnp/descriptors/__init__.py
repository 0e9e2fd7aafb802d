"""Symmetry-function descriptors: typed functions and descriptor sets
(`functions`), the study presets (`presets`) and data-driven selection
(`selection`). The maths, the parameter rules and the file format live once,
in the C++ core; this package says *which* functions to use.
"""

from nnp.descriptors.compact import C2, C4, C5, CW2, CW4, CW5
from nnp.descriptors.functions import G2, G4, G5, W2, W4, W5, DescriptorSet, SymmetryFunction, from_core
from nnp.descriptors.presets import (
    ANGULAR_ETAS,
    DATA_SERIES,
    LENGTHS,
    RADIAL_ETAS,
    SELECTED_SERIES,
    SERIES,
    STUDY_CUTOFF,
    WIDE_ZETA_SUBSETS,
    WIDE_ZETAS,
    ZETA_SUBSETS,
    ZETAS,
    build,
    preset,
    preset_names,
    canonical_preset,
    weighted_preset_names,
)
from nnp.descriptors.selection import (
    CUR_MAX_TAIL_RATIO,
    candidate_pool,
    cur_select,
    neighbor_distances,
    pair_distances,
    resolve,
    selected,
    shifted_radial,
    tail_ratio,
)

__all__ = [
    "G2", "G4", "G5", "W2", "W4", "W5", "C2", "C4", "C5", "CW2", "CW4", "CW5", "DescriptorSet", "SymmetryFunction", "from_core",
    "ANGULAR_ETAS", "DATA_SERIES", "LENGTHS", "RADIAL_ETAS", "SELECTED_SERIES", "SERIES", "STUDY_CUTOFF",
    "WIDE_ZETA_SUBSETS", "WIDE_ZETAS", "ZETA_SUBSETS", "ZETAS", "build", "canonical_preset", "preset", "preset_names", "weighted_preset_names",
    "CUR_MAX_TAIL_RATIO", "candidate_pool", "cur_select", "neighbor_distances", "pair_distances", "resolve",
    "selected", "shifted_radial", "tail_ratio",
]
