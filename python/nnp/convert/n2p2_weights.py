"""n2p2's ``weights.ZZZ.data``: the weights and biases of one element's network."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from nnp.convert.n2p2_settings import ATOMIC_NUMBER, N2p2Error, data_lines, number


def weights_path(directory: Path, element: str) -> Path:
    return directory / f"weights.{ATOMIC_NUMBER[element]:03d}.data"


def read_weights(path: Path, sizes: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W (n_out, n_in), b (n_out,)) per layer from an n2p2 weights file.

    The first column holds the values in n2p2's order; when the file also has
    n2p2's annotation columns ("a index l_s n_s l_e n_e" for a weight,
    "b index l n" for a bias) they are checked against that order.
    """
    entries = data_lines(path, "n2p2 names weight files by atomic number")
    expected = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    if len(entries) != expected:
        raise N2p2Error(
            f"{path}: {len(entries)} values, but the network {'-'.join(map(str, sizes))} of input.nn "
            f"has {expected} weights and biases"
        )
    layers = []
    pos = 0
    for li in range(1, len(sizes)):
        n_in, n_out = sizes[li - 1], sizes[li]
        w = np.empty((n_out, n_in))
        b = np.empty(n_out)
        for j in range(n_in):  # previous-layer neuron (outer), as n2p2 stores them
            for k in range(n_out):
                n, tok = entries[pos]
                pos += 1
                w[k, j] = number(path, n, tok[0], "a weight")
                _check_annotation(path, n, tok, "a", pos, (li - 1, j + 1, li, k + 1))
        for k in range(n_out):
            n, tok = entries[pos]
            pos += 1
            b[k] = number(path, n, tok[0], "a bias")
            _check_annotation(path, n, tok, "b", pos, (li, k + 1))
        layers.append((w, b))
    return layers


def _check_annotation(path: Path, line: int, tok: list[str], kind: str, count: int, where: tuple[int, ...]) -> None:
    if len(tok) == 1:
        return  # values only: nothing to check
    want = [kind, str(count), *map(str, where)]
    if tok[1:] != want:
        raise N2p2Error(
            f"{path}:{line}: expected the {'weight' if kind == 'a' else 'bias'} annotated "
            f"'{' '.join(want)}' here, found '{' '.join(tok[1:])}'"
        )
