"""n2p2's compact ("polynomial") symmetry functions, types 20–25 (Bircher et
al., Mach. Learn.: Sci. Technol. 2, 035026 (2021)), as our C2, C4, C5, CW2,
CW4, CW5.

    ec 20 e1 rl rc subtype                      C_r(R) summed over neighbours of e1
    ec 21|22 e1 e2 rl rc angle_l angle_r subtype  narrow | wide angular (j<k)
    ec 23 rl rc subtype                         every neighbour, weighted by Z
    ec 24|25 rl rc angle_l angle_r subtype      narrow | wide angular over every
                                                pair j<k, weighted by Z_j Z_k

subtype: p1–p4, p1a–p4a (asymmetric radial part), e. The windows are their
own cutoff (n2p2's cutoff_type does not enter). rl and rc are lengths (model
units), the angles are in degrees. n2p2's types 24/25 (SymFncCompAngnWeighted,
SymFncCompAngwWeighted) are its types 21/22 over every neighbour pair with
the product of the atomic numbers as weight: our CW4/CW5 with weights Z.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nnp import _core
from nnp.descriptors import C2, C4, C5, CW2, CW4, CW5

COMPACT_TYPES = {20: "compact polynomial radial", 21: "compact polynomial narrow angular",
                 22: "compact polynomial wide angular", 23: "compact polynomial weighted radial",
                 24: "compact polynomial weighted narrow angular", 25: "compact polynomial weighted wide angular"}


@dataclass(frozen=True)
class CompactSymFunc:
    """One compact symfunction_short line, parameters as written (model units)."""

    element: str
    type: int  # 20 … 25
    neighbors: tuple[str, ...]  # (e1,) for 20, (e1, e2) by atomic number for 21/22, () for 23-25
    rl: float
    rc: float
    subtype: str
    angle_left: float = 0.0
    angle_right: float = 0.0
    line: int = 0
    z_of: tuple[int, ...] = ()  # atomic numbers of `neighbors` (n2p2 sorts by element index)

    cutoff_factors = 0  # no cutoff function: n2p2's normalised-tanh constant does not enter

    def sort_key(self) -> tuple:
        """n2p2's operator< of SymFncComp*: type, subtype, element(s), rc, rl, angles."""
        return (self.type, self.subtype, *self.z_of, self.rc, self.rl, self.angle_left, self.angle_right)

    def converted(self, cflength: float):
        """Our function, in Å (rl and rc divided by cflength; angles unchanged)."""
        rl, rc = self.rl / cflength, self.rc / cflength
        if self.type == 20:
            return C2(self.neighbors[0], rl, rc, self.subtype)
        # Weighted kinds: weights Z (the default), as n2p2's atomicNumber.
        if self.type == 23:
            return CW2(rl, rc, self.subtype)
        if self.type in (24, 25):
            return (CW4 if self.type == 24 else CW5)(rl, rc, self.angle_left, self.angle_right, self.subtype)
        cls = C4 if self.type == 21 else C5
        return cls(self.neighbors, rl, rc, self.angle_left, self.angle_right, self.subtype)


def parse_compact(path: Path, line: int, tok: list[str], sf_type: int, elements: Sequence[str], number,
                  atomic_number: dict[str, int], error) -> CompactSymFunc:
    """tok: the tokens after symfunction_short (centre, type, ...); `number`
    parses a number naming the line, `error` builds the exception."""
    where = f"{path}:{line}"
    name = COMPACT_TYPES[sf_type]
    usage = {20: "element 20 neighbor rl rc subtype", 21: "element 21 neighbor1 neighbor2 rl rc angle_left "
             "angle_right subtype", 23: "element 23 rl rc subtype",
             24: "element 24 rl rc angle_left angle_right subtype"}
    usage[22] = usage[21].replace(" 21 ", " 22 ")
    usage[25] = usage[24].replace(" 24 ", " 25 ")
    n_elements = {20: 1, 21: 2, 22: 2, 23: 0, 24: 0, 25: 0}[sf_type]
    if len(tok) != len(usage[sf_type].split()):
        raise error(f"{where}: type {sf_type} ({name}) expects '{usage[sf_type]}', found {' '.join(tok)!r}")
    neighbors = tok[2:2 + n_elements]
    for e in neighbors:
        if e not in elements:
            raise error(f"{where}: element {e!r} is not in the 'elements' line {list(elements)}")
    values = [number(path, line, t, w) for t, w in zip(tok[2 + n_elements:-1],
                                                        ("rl", "rc", "angle_left", "angle_right"))]
    subtype = tok[-1]
    if subtype not in _core.COMPACT_CORES:
        raise error(f"{where}: symmetry function type {sf_type} ({name}): unknown subtype {subtype!r} "
                    f"(expected one of {', '.join(_core.COMPACT_CORES)})")
    neighbors = tuple(sorted(neighbors, key=atomic_number.__getitem__))
    sf = CompactSymFunc(tok[0], sf_type, neighbors, *values[:2], subtype, *values[2:], line=line,
                        z_of=tuple(atomic_number[e] for e in neighbors))
    try:
        sf.converted(1.0).check()
    except ValueError as err:
        raise error(f"{where}: {str(err).split(': ', 1)[-1]}") from None
    return sf
