"""Labelled structures for training: reading, checking, splitting, featurising.

`read_structures` reads any format ASE reads with energies and forces (extxyz,
Quantum Espresso pw.x output, VASP vasprun.xml and OUTCAR, ...) plus n2p2's
``input.data`` (`nnp.data.n2p2`), the mlearn benchmark's JSON
(`nnp.data.mlearn`) and DeePMD-kit's deepmd/raw and deepmd/npy systems
(`nnp.data.deepmd`, a directory); the format comes from `format=` or the
content (`nnp.data.formats`; docs/data.md lists formats and conventions). Bad
frames are refused with a ValueError naming the file and the frame (counted
from 0, as ASE's ``index``); `summarize` (``python -m nnp.data summary FILE``)
instead lists every problem frame of a file.

`FeaturizedDataset`, `Batch` and `ElementBlock` (`nnp.data.dataset`) are the
tensors training sees. They are loaded on first use, so that reading and
checking data do not import torch.

Units: Å, eV, eV/Å, stress in eV/Å³ (ASE convention: tension positive).
"""

from __future__ import annotations

from nnp.data.cli import main
from nnp.data.deepmd import write_deepmd_npy
from nnp.data.formats import FORMATS, data_sha256, detect_format, iter_frames, read_structures, write_structures
from nnp.data.frames import (
    DEFAULT_CONFIG_TYPE,
    ISOLATED_ATOM_TYPE,
    MIN_DISTANCE,
    Unreadable,
    frame_problems,
    isolated_atom,
    labels,
    split,
)
from nnp.data.summary import FileSummary, format_summary, summarize

_DATASET_NAMES = ("Batch", "ElementBlock", "FeaturizedDataset")

__all__ = [
    "DEFAULT_CONFIG_TYPE",
    "FORMATS",
    "ISOLATED_ATOM_TYPE",
    "MIN_DISTANCE",
    "FileSummary",
    "Unreadable",
    "data_sha256",
    "detect_format",
    "format_summary",
    "frame_problems",
    "isolated_atom",
    "iter_frames",
    "labels",
    "main",
    "read_structures",
    "split",
    "summarize",
    "write_deepmd_npy",
    "write_structures",
    *_DATASET_NAMES,
]


def __getattr__(name: str):
    # The dataset classes need torch, which reading data must not import.
    if name in _DATASET_NAMES:
        from nnp.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'nnp.data' has no attribute {name!r}")
