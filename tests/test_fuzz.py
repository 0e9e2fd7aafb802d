"""Fuzz test of the potential-file reader: seeded mutations of valid files
fed to the C++ parser, the one reader of the format, through its three doors:
nnp._core.Potential (file and Potential.from_string), the Python view
(nnp.io.potential_file.read: the core's spec converted to dataclasses) and
LAMMPS (`pair_coeff` of `pair_style nnp`, then `run 0` when the file is
accepted).

All layers run in one worker subprocess that reports each case as a JSON
line; the parent (this test) watches it, so a crash (the worker dies) or a
hang (no report for HANG_SECONDS) is attributed to the case and layer that
was running, and the worker is restarted after it.

Every case must end in one of:
  * a clean rejection by every layer: the core's ValueError whose message
    starts with "FILE:LINE: " (a line that exists; the lines are those of the
    earlier separate Python and C++ readers, which the fuzz pinned to agree),
    the same message as a PotentialFileError from the Python view, and a
    LAMMPS error containing it;
  * acceptance by every layer, only if the mutation can leave a valid file,
    with the Python view written back by the one writer (nnp._core's
    format_potential) a fixed point of read → write, and read by the core
    giving bit-identical energies and forces; LAMMPS giving the core's energy.
Mutations that certainly break the file must be rejected; those that
certainly keep it valid (comments, whitespace, equivalent spellings of a
number) must be accepted with bit-identical results.

`benchmarks/fuzz_potential_files.py` runs a larger campaign with this engine.
"""

from __future__ import annotations

import json
import os
import random
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TINY = TESTS / "data" / "tiny.nnp"
N_CASES = 2400
SEED = 20240611
HANG_SECONDS = 20.0
MAX_RUN_CUTOFF = 12.0  # Å: `run 0` in LAMMPS only below this (a mutated r_c can be huge)

# ----------------------------------------------------------------------------
# Base files


def base_files() -> dict[str, str]:
    """Valid files to mutate: tiny.nnp, a two-element file (Si, Ge) with
    sections grouped by kind, tanh3 cutoff and full angular sum, tiny.nnp
    with a quadratic section (format version 3), and tiny.nnp with weighted
    functions (format version 4)."""
    tiny = TINY.read_text()
    lines = tiny.splitlines()
    head_end = next(k for k, line in enumerate(lines) if line.startswith("reference_energy"))
    body = lines[head_end:-1]  # the Si sections, without 'end'

    def block(key):
        start = next(k for k, line in enumerate(body) if line.startswith(key))
        stop = next((k for k in range(start + 1, len(body)) if body[k].split()[0] in
                     ("reference_energy", "descriptor", "scaling", "network")), len(body))
        return body[start:stop]

    def to_ge(rows):
        return [r.replace("G2 Si", "G2 Ge").replace("Si Si", "Si Ge").replace(" Si", " Ge", 1)
                if r.split()[0] in ("reference_energy", "descriptor", "scaling", "network", "G2", "G4", "G5")
                else r for r in rows]

    head = [line.replace("elements 1 Si", "elements 2 Si Ge").replace("cutoff_function cos", "cutoff_function tanh3")
            .replace("angular_sum half", "angular_sum full") for line in lines[:head_end]]
    two = list(head)
    for key in ("reference_energy", "descriptor", "scaling", "network"):
        si = block(key)
        ge = to_ge(si)
        if key == "reference_energy":
            ge = ["reference_energy Ge -4.5"]
        two += ["# " + key + " sections", *si, *ge]
    two.append("end")
    return {"tiny": tiny, "sige": "\n".join(two) + "\n", "quadratic": _with_quadratic_section(tiny),
            "weighted": _with_weighted_functions(tiny)}


def _with_weighted_functions(text: str) -> str:
    """`text` (one element) as format version 4: an element_weights line and
    one W2, W4 and W5 in place of plain functions."""
    swaps = {"G2 Si 0.01 0 4.5": "W2 0.01 0 4.5", "G4 Si Si 0.01 1 -1 0 4.5": "W4 0.01 1 -1 0 4.5",
             "G5 Si Si 0.02 2.5 -1 0 4.5": "W5 0.02 2.5 -1 0 4.5"}
    lines = [swaps.get(line, line) for line in text.splitlines()]
    assert len(set(swaps.values()) & set(lines)) == len(swaps)
    lines.insert(lines.index("angular_sum half") + 1, "element_weights Si 1.5")
    lines[0] = "nnp-potential 4"
    return "\n".join(lines) + "\n"


def _with_quadratic_section(text: str) -> str:
    """`text` (one element) as format version 3, with a quadratic section of
    fixed pseudo-random coefficients (an exactly symmetric matrix)."""
    lines = text.splitlines()
    M = int(next(line for line in lines if line.startswith("descriptor Si")).split()[2])
    rng = random.Random(7)
    b = [rng.uniform(-0.1, 0.1) for _ in range(M)]
    A = [[0.0] * M for _ in range(M)]
    for r in range(M):
        for c in range(r, M):
            A[r][c] = A[c][r] = rng.uniform(-0.05, 0.05)
    row = lambda values: " ".join("%.17g" % v for v in values)  # noqa: E731
    section = [f"quadratic Si {M}", row(b), *(row(r) for r in A)]
    end = len(lines) - 1 - lines[::-1].index("end")
    lines = lines[:end] + section + lines[end:]
    lines[0] = "nnp-potential 3"
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Mutations

DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
KEYWORDS = {"nnp-potential", "units", "elements", "cutoff_function", "angular_sum", "reference_energy",
            "descriptor", "scaling", "network", "activations", "layer", "end", "G2", "G4", "G5", "quadratic",
            "W2", "W4", "W5", "element_weights"}
# Token positions holding counts (the file's structure), per keyword.
COUNT_FIELDS = {"elements": [1], "descriptor": [2], "scaling": [2], "network": None, "layer": [1, 2, 3],
                "quadratic": [2]}
NOT_NUMBERS = ["abc", "1.2.3", "--1", "+-1", "0x1p3", "0x10", "1_000", "1e", "e5", ".", "+", "-", "1,5",
               "1..2", "\u0661", "\u00bd", "1e5e5", "nan(1)", "0b1", "1d0", "1.0f", "(1)", "'1'", "1e+",
               "\uff11", "#1", "infinit", "1/2", "2**3", "0o7", "i", "j", "1j", "None"]
NON_FINITE = ["nan", "NaN", "-nan", "+nan", "inf", "-inf", "+inf", "Inf", "INF", "Infinity", "-infinity",
              "1e400", "-1e400", "1e99999", "2e308", "-1.8e308"]
HUGE = ["1e308", "-1e308", "1.7976931348623157e308", "1e300", "99999999999999999999", "4294967296",
        "2147483648", "-2147483649", "9223372036854775808", "100000", "100001", "1000000", "1e-320",
        "4.9e-324", "1e-400", "0", "-0", "-1", "1e20"]
SPECIAL_BYTES = [b"\x00", b"\x01", b"\x07", b"\x0b", b"\x0c", b"\r", b"\x1b", b"\x1f", b"\xff", b"\xfe",
                 b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf5\x80\x80\x80", b"\xf4\x90\x80\x80",
                 b"\xe0\x80\xaf", b"\xc3"]
UNICODE_SPACES = ["\u00a0", "\u2003", "\u2028", "\u2029", "\ufeff", "\u0085", "\u3000", "\u200b"]


@dataclass
class Case:
    index: int
    base: str
    mutation: str
    data: bytes
    expect: str  # "reject", "accept" (same numbers as the base file) or "either"


class _Text:
    """A file as lines, with the indices of content (non-comment, non-blank) lines."""

    def __init__(self, text: str):
        self.lines = text.split("\n")
        if self.lines[-1] == "":
            self.lines.pop()
        self.content = [k for k, line in enumerate(self.lines)
                        if line.strip() and not line.lstrip().startswith("#")]
        self.comments = [k for k in range(len(self.lines)) if k not in set(self.content)]
        self.end = self.content[-1]  # the 'end' line

    def join(self, lines=None) -> bytes:
        return ("\n".join(self.lines if lines is None else lines) + "\n").encode()

    def tokens(self, k: int) -> list[str]:
        return self.lines[k].split()

    def numeric_positions(self) -> list[tuple[int, int]]:
        return [(k, t) for k in self.content for t, tok in enumerate(self.tokens(k))
                if DECIMAL.fullmatch(tok) and not (t == 1 and self.tokens(k)[0] == "nnp-potential")]

    def count_positions(self) -> list[tuple[int, int]]:
        out = []
        for k in self.content:
            tok = self.tokens(k)
            fields = COUNT_FIELDS.get(tok[0], [])
            if fields is None:  # network E L n1 ... nL
                fields = list(range(2, len(tok)))
            out += [(k, t) for t in fields if t < len(tok)]
        return out

    def replace_token(self, k: int, t: int, new: str) -> bytes:
        lines = list(self.lines)
        tok = self.tokens(k)
        tok[t] = new
        lines[k] = " ".join(tok)
        return self.join(lines)

    def sections(self) -> list[tuple[int, int]]:
        """[start, stop) line ranges of the sections (reference_energy ... network)."""
        starts = [k for k in self.content if self.tokens(k)[0] in
                  ("reference_energy", "descriptor", "scaling", "network", "quadratic")]
        bounds = starts + [self.end]
        return list(zip(bounds[:-1], bounds[1:]))


def _insert_bytes(data: bytes, at: int, what: bytes) -> bytes:
    return data[:at] + what + data[at:]


def _equivalent_spellings(tok: str) -> list[str]:
    """Other spellings of the same double (both readers must read the same value)."""
    x = float(tok)
    out = [repr(x), "%.17e" % x, "%.17E" % x, "%.25g" % x, tok + "e0", tok + "E+00"]
    if not tok.startswith(("-", "+")):
        out += ["+" + tok, "0" + tok]
    if "." in tok and "e" not in tok.lower():
        out += [tok + "000", tok + "00000000000000000000001"]  # trailing digits far below 1 ulp
    if "." not in tok and "e" not in tok.lower():
        out.append(tok + ".")
    if tok.startswith("0.") and x != 0.0:
        out.append(tok[1:])  # ".5"
    if x == 0.0:
        out += ["0.0", "0e10", "000", ".0"]
    return [s for s in out if DECIMAL.fullmatch(s) and float(s) == x and (x != 0.0 or s[0] != "-")]


def mutate(text: str, rng: random.Random, op: str) -> tuple[bytes, str, str]:
    """One mutation of `text`: (bytes, description, expectation)."""
    f = _Text(text)
    data = f.join()
    if op == "truncate_bytes":
        end_at = data.rindex(b"\nend") + 1
        at = rng.randrange(0, end_at)
        return data[:at], f"cut at byte {at}", "reject"
    if op == "truncate_lines":
        keep = rng.randrange(0, f.end)
        return f.join(f.lines[:keep]), f"keep {keep} lines", "reject"
    if op == "delete_line":
        k = rng.choice(f.content)
        return f.join(f.lines[:k] + f.lines[k + 1:]), f"delete line {k + 1}", "reject"
    if op == "duplicate_line":
        k = rng.choice(f.content)
        return f.join(f.lines[:k + 1] + f.lines[k:]), f"duplicate line {k + 1}", "reject"
    if op == "swap_lines":
        k = rng.choice(f.content[:-1])
        j = f.content[f.content.index(k) + 1]
        lines = list(f.lines)
        lines[k], lines[j] = lines[j], lines[k]
        same = f.lines[k].split() == f.lines[j].split()
        return f.join(lines), f"swap lines {k + 1} and {j + 1}", "accept" if same else "either"
    if op == "move_line":
        k = rng.choice(f.content)
        lines = f.lines[:k] + f.lines[k + 1:]
        to = rng.randrange(0, len(lines) + 1)
        lines.insert(to, f.lines[k])
        return f.join(lines), f"move line {k + 1} to {to + 1}", "either"
    if op == "wrong_count":
        k, t = rng.choice(f.count_positions())
        old = int(f.tokens(k)[t])
        new = rng.choice([old + 1, old - 1, old + rng.randrange(2, 50), 0, -1, -old, 2 * old,
                          100000, 100001, 10**6, 2**31, 2**63, 10**30, max(old - 2, 1)])
        if new == old:
            new = old + 1
        return f.replace_token(k, t, str(new)), f"line {k + 1} token {t}: {old} -> {new}", "reject"
    if op == "non_number":
        k, t = rng.choice(f.numeric_positions())
        new = rng.choice(NOT_NUMBERS)
        return f.replace_token(k, t, new), f"line {k + 1} token {t} -> {new!r}", "reject"
    if op == "non_finite":
        k, t = rng.choice(f.numeric_positions())
        new = rng.choice(NON_FINITE)
        return f.replace_token(k, t, new), f"line {k + 1} token {t} -> {new!r}", "reject"
    if op == "huge_number":
        k, t = rng.choice(f.numeric_positions() + f.count_positions())
        new = rng.choice(HUGE)
        return f.replace_token(k, t, new), f"line {k + 1} token {t} -> {new!r}", "either"
    if op == "digit_change":
        k, t = rng.choice(f.numeric_positions())
        tok = f.tokens(k)[t]
        digits = [i for i, c in enumerate(tok) if c.isdigit()]
        i = rng.choice(digits)
        new = tok[:i] + rng.choice("0123456789".replace(tok[i], "")) + tok[i + 1:]
        return f.replace_token(k, t, new), f"line {k + 1} token {t}: {tok} -> {new}", "either"
    if op == "equivalent_number":
        counts = set(f.count_positions())
        k, t = rng.choice([p for p in f.numeric_positions() if p not in counts])
        tok = f.tokens(k)[t]
        if (f.tokens(k)[0], t) in (("G4", 5), ("G5", 5), ("W4", 3), ("W5", 3)):  # lambda: an integer
            new = rng.choice(["+1", "01", "001"]) if tok == "1" else rng.choice(["-01", "-001"])
        else:
            new = rng.choice(_equivalent_spellings(tok))
        return f.replace_token(k, t, new), f"line {k + 1} token {t}: {tok} -> {new}", "accept"
    if op == "wrong_version":
        new = rng.choice(["nnp-potential 2", "nnp-potential 0", "nnp-potential 1.0", "nnp-potential",
                          "nnp-potential 1 1", "NNP-potential 1", "nnp_potential 1", "nnp-potential 01",
                          "nnp-potential +1", "nnp-potential -1", "potential 1", "1", "nnp-potential v1",
                          "nnp-potential 10", "nnp-potential\t2"])
        return f.join([new] + f.lines[1:]), f"line 1 -> {new!r}", "reject"
    if op == "random_bytes":
        n = rng.choice([0, 1, 7, 100, 1000, 5000])
        blob = bytes(rng.randrange(256) for _ in range(n))
        if rng.random() < 0.3:
            blob = b"nnp-potential 1\n" + blob
        return blob, f"{len(blob)} random bytes", "reject"
    if op == "overwrite_bytes":
        at = rng.randrange(0, len(data))
        n = rng.randrange(1, 32)
        blob = bytes(rng.randrange(256) for _ in range(n))
        return data[:at] + blob + data[at + n:], f"{n} random bytes at {at}", "either"
    if op == "special_byte":
        what = rng.choice(SPECIAL_BYTES)
        k = rng.randrange(len(f.lines))  # any line, comments too: these bytes are never text
        start = len(f.join(f.lines[:k])) if k else 0
        length = len(f.lines[k].encode())
        at = start + rng.randrange(0, length + 1)
        if what == b"\r" and at == start + length:
            # A single '\r' before '\n' is a CRLF line end (valid): put it first.
            what = b"\r" if length else b"\x00"
            at = start
        return _insert_bytes(data, at, what), f"{what!r} in line {k + 1}", "reject"
    if op == "unicode_space":
        space = rng.choice(UNICODE_SPACES)
        k = rng.choice(f.content + f.comments) if f.comments else rng.choice(f.content)
        line = f.lines[k]
        i = rng.randrange(0, len(line) + 1)
        lines = list(f.lines)
        lines[k] = line[:i] + space + line[i:]
        if k in f.comments and line.lstrip().startswith("#") and i > line.index("#"):
            return f.join(lines), f"U+{ord(space):04X} in comment line {k + 1}", "accept"
        return f.join(lines), f"U+{ord(space):04X} in line {k + 1} at {i}", "reject" if k in f.content else "either"
    if op == "append_after_end":
        tail = rng.choice(["x", "end", "0.5", "units metal", "# fine", "\n\n   \n", "\t# x\n", "G2 Si 1 0 4"])
        expect = "accept" if tail.strip().startswith("#") or not tail.strip() else "reject"
        return data + tail.encode() + b"\n", f"append {tail!r}", expect
    if op == "swap_sections":
        secs = f.sections()
        a, b = sorted(rng.sample(range(len(secs)), 2))
        (s1, e1), (s2, e2) = secs[a], secs[b]
        lines = f.lines[:s1] + f.lines[s2:e2] + f.lines[e1:s2] + f.lines[s1:e1] + f.lines[e2:]
        return f.join(lines), f"swap sections at lines {s1 + 1} and {s2 + 1}", "either"
    if op == "case_change":
        k = rng.choice(f.content)
        tok = f.tokens(k)
        cands = [t for t, s in enumerate(tok) if s.lower() != s.upper() and not DECIMAL.fullmatch(s)
                 and s.swapcase() != s]
        if not cands:
            k = 0
            tok = f.tokens(0)
            cands = [0]
        t = rng.choice(cands)
        new = rng.choice([tok[t].upper(), tok[t].swapcase(), tok[t].capitalize()])
        if new == tok[t]:
            new = tok[t].swapcase()
        # An element symbol changed in one place, or a keyword: always wrong.
        return f.replace_token(k, t, new), f"line {k + 1} token {t}: {tok[t]} -> {new}", "reject"
    if op == "insert_comment_or_blank":
        what = rng.choice(["", "   ", "\t", "# x", "   # indented", "#", "#G2 Si 1 0 4", "\t#\tend", "# \u00e9\u00e8 \u2028"])
        at = rng.randrange(1, len(f.lines) + 1)
        return f.join(f.lines[:at] + [what] + f.lines[at:]), f"insert {what!r} at line {at + 1}", "accept"
    if op == "whitespace":
        kind = rng.choice(["tabs", "spaces", "leading", "trailing", "crlf", "no_final_newline"])
        if kind == "crlf":
            return data.replace(b"\n", b"\r\n"), "CRLF line ends", "accept"
        if kind == "no_final_newline":
            return data[:-1], "no final newline", "accept"
        k = rng.choice(f.content)
        lines = list(f.lines)
        tok = f.tokens(k)
        sep = {"tabs": "\t", "spaces": "    ", "leading": " ", "trailing": " "}[kind]
        lines[k] = sep.join(tok) if kind in ("tabs", "spaces") else (
            "  \t " + lines[k] if kind == "leading" else lines[k] + " \t ")
        return f.join(lines), f"{kind} in line {k + 1}", "accept"
    if op == "extra_token":
        k = rng.choice(f.content)
        extra = rng.choice(["1", "0.5", "x", "Si", "end", "#", "0"])
        lines = list(f.lines)
        lines[k] = lines[k] + " " + extra
        return f.join(lines), f"append {extra!r} to line {k + 1}", "reject"
    if op == "drop_token":
        k = rng.choice(f.content)
        tok = f.tokens(k)
        t = rng.randrange(len(tok))
        lines = list(f.lines)
        lines[k] = " ".join(tok[:t] + tok[t + 1:])
        return f.join(lines), f"drop token {t} of line {k + 1}", "reject"
    if op == "unknown_element":
        cands = [(k, t) for k in f.content for t, s in enumerate(f.tokens(k))
                 if s in ("Si", "Ge") and not (f.tokens(k)[0] == "elements")]
        k, t = rng.choice(cands)
        new = rng.choice(["Xx", "C", "O", "Sn", "SI", "S", "Si2", "Ge-", "H"])
        return f.replace_token(k, t, new), f"line {k + 1} token {t} -> {new}", "reject"
    if op == "long_line":
        k = rng.choice(f.content)
        n = rng.choice([1000, 100000])
        lines = list(f.lines)
        lines[k] = lines[k] + (" 0.5" * n)
        return f.join(lines), f"{n} extra numbers on line {k + 1}", "reject"
    if op == "copy_function":
        # One symmetry function line replaced by another of the same descriptor:
        # a duplicate function (the counts still match).
        blocks = [(k, t) for k, t in f.sections() if f.tokens(k)[0] == "descriptor"]
        k0, k1 = rng.choice(blocks)
        rows = [k for k in f.content if k0 < k < k1]
        src, dst = rng.sample(rows, 2)
        lines = list(f.lines)
        lines[dst] = lines[src]
        return f.join(lines), f"line {src + 1} copied over line {dst + 1}", "reject"
    if op == "swap_pair_elements":
        # 'G4 A B ...' and 'G4 B A ...' are the same function.
        rows = [k for k in f.content if f.tokens(k)[0] in ("G4", "G5")]
        mixed = [k for k in rows if f.tokens(k)[1] != f.tokens(k)[2]]
        k = rng.choice(mixed or rows)
        tok = f.tokens(k)
        tok[1], tok[2] = tok[2], tok[1]
        lines = list(f.lines)
        lines[k] = " ".join(tok)
        return f.join(lines), f"swap the elements of line {k + 1}", "accept"
    if op == "splice_lines":
        a = rng.randrange(0, f.end)
        b = rng.randrange(a, min(f.end, a + 8)) + 1
        at = rng.randrange(0, len(f.lines))
        lines = f.lines[:at] + f.lines[a:b] + f.lines[at:]
        same_kind = all(not f.lines[k].strip() or f.lines[k].lstrip().startswith("#") for k in range(a, b))
        return f.join(lines), f"copy lines {a + 1}-{b} to {at + 1}", "accept" if same_kind and at > 0 else "either"
    raise ValueError(op)


OPS = ["truncate_bytes", "truncate_lines", "delete_line", "duplicate_line", "swap_lines", "move_line",
       "wrong_count", "non_number", "non_finite", "huge_number", "digit_change", "equivalent_number",
       "wrong_version", "random_bytes", "overwrite_bytes", "special_byte", "unicode_space",
       "append_after_end", "swap_sections", "case_change", "insert_comment_or_blank", "whitespace",
       "extra_token", "drop_token", "unknown_element", "long_line", "splice_lines", "copy_function",
       "swap_pair_elements"]


def generate(n: int, seed: int = SEED) -> list[Case]:
    """n cases, deterministic in (seed, index): each mutation kind and base file in turn."""
    bases = base_files()
    names = sorted(bases)
    cases = []
    for i in range(n):
        base = names[i % len(names)]
        op = OPS[(i // len(names)) % len(OPS)]
        rng = random.Random(f"{seed}:{i}")
        data, what, expect = mutate(bases[base], rng, op)
        if rng.random() < 0.15 and expect != "accept" and op not in ("random_bytes",):
            # Stack a second mutation on some cases.
            try:
                text = data.decode()
                _Text(text)
            except (UnicodeDecodeError, IndexError, ValueError):
                pass
            else:
                op2 = rng.choice(OPS)
                try:
                    data2, what2, expect2 = mutate(text, rng, op2)
                except (IndexError, ValueError):
                    pass
                else:
                    # Two breaking mutations can repair each other (append a line
                    # after 'end', then delete it): no expectation.
                    data, what, expect = data2, f"{what}; then {op2}: {what2}", "either"
                    op = f"{op}+{op2}"
        cases.append(Case(i, base, op, data, expect))
    return cases


# ----------------------------------------------------------------------------
# Worker (subprocess): every layer on every case, one JSON line per case.


def _structure():
    """8 rattled diamond Si atoms in a periodic cube (the same in the core and LAMMPS)."""
    import numpy as np

    a = 5.43
    basis = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    frac = np.vstack([basis, basis + 0.25])
    rng = np.random.default_rng(7)
    return (frac * a + rng.normal(0.0, 0.1, (8, 3))) % a, a


def _message(err: BaseException) -> str:
    return str(err).split("\n")[0] if str(err) else type(err).__name__


def worker(manifest: str, start: int) -> None:
    import numpy as np

    from nnp import _core
    from nnp.io import potential_file as pf
    import nnp.lammps

    items = json.loads(Path(manifest).read_text())
    positions, a = _structure()
    cell = np.eye(3) * a

    def core_eval(pot):
        names = list(pot.elements)
        if "Si" not in names or not pot.cutoff <= MAX_RUN_CUTOFF:
            return None
        try:
            ev = pot.evaluate(positions, np.full(8, names.index("Si"), np.int32), cell, [True] * 3)
        except ValueError as err:  # e.g. a huge weight: non-finite energy
            return ["error", _message(err)]
        values = [float(ev["energy"]), *map(float, ev["forces"].ravel())]
        if not np.all(np.isfinite(values)):
            # e.g. eta = 1e308: finite energy, NaN forces (0 * inf); the core's
            # evaluate() checks only the energy.
            return ["error", "non-finite energy or forces"]
        return values

    lmp = nnp.lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    setup = ["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p",
             f"region box block 0 {a!r} 0 {a!r} 0 {a!r}", "create_box 1 box"]
    setup += [f"create_atoms 1 single {x!r} {y!r} {z!r} units box remap yes" for x, y, z in positions.tolist()]
    setup += ["mass 1 28.0855", "pair_style nnp", "thermo_style custom step pe", "thermo_modify format float %.17g"]
    lmp.commands_string("\n".join(setup))

    # Faults injected to test the supervisor (test_supervisor_attributes_crash_and_hang).
    faults = dict(f.split("=") for f in os.environ.get("NNP_FUZZ_FAULTS", "").split(",") if f)
    out = sys.stdout
    for item in items[start:]:
        i, path = item["i"], item["path"]
        res: dict = {"i": i}

        def stage(name):
            out.write(json.dumps({"i": i, "stage": name}) + "\n")
            out.flush()
            fault = faults.get(f"{i}:{name}")
            if fault == "crash":
                os.kill(os.getpid(), signal.SIGSEGV)
            elif fault == "hang":
                time.sleep(3600)

        stage("python")
        data = None
        try:
            data = pf.read(path)
            res["py"] = ["ok"]
        except ValueError as err:
            res["py"] = ["error", _message(err), type(err).__name__]
        except Exception as err:  # noqa: BLE001  (any other exception is a finding)
            res["py"] = ["exception", f"{type(err).__name__}: {_message(err)}"]
        if data is not None:
            stage("python-write")
            try:
                # What Python read, written back and read by the core; the
                # written text is a fixed point of read -> write.
                text = pf.dumps(data)
                res["py_core"] = core_eval(_core.Potential.from_string(text, path))
                res["py_fixed_point"] = pf.dumps(pf.loads(text)) == text
            except Exception as err:  # noqa: BLE001
                res["py"] = ["exception", f"writing back what was read: {type(err).__name__}: {_message(err)}"]

        stage("core")
        try:
            pot = _core.Potential(path)
            res["cpp"] = ["ok"]
            stage("core-evaluate")
            res["cpp_eval"] = core_eval(pot)
            res["elements"] = list(pot.elements)
        except ValueError as err:
            res["cpp"] = ["error", _message(err)]
        except Exception as err:  # noqa: BLE001
            res["cpp"] = ["exception", f"{type(err).__name__}: {_message(err)}"]

        stage("core-from-string")
        try:
            _core.Potential.from_string(Path(path).read_bytes(), path)
            res["cpp_string"] = ["ok"]
        except ValueError as err:
            res["cpp_string"] = ["error", _message(err)]
        except Exception as err:  # noqa: BLE001
            res["cpp_string"] = ["exception", f"{type(err).__name__}: {_message(err)}"]

        stage("lammps")
        try:
            lmp.command(f'pair_coeff * * "{path}" Si')
            res["lmp"] = ["ok"]
        except Exception as err:  # noqa: BLE001  (LAMMPS raises a plain Exception)
            res["lmp"] = ["error", _message(err)]
        if res["lmp"][0] == "ok" and res.get("cpp_eval") is not None:
            stage("lammps-run")
            try:
                lmp.command("run 0 post no")
                res["lmp_run"] = ["ok", float(lmp.get_thermo("pe"))]
            except Exception as err:  # noqa: BLE001
                res["lmp_run"] = ["error", _message(err)]
        out.write(json.dumps(res) + "\n")
        out.flush()
    lmp.close()


_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); import test_fuzz; test_fuzz.worker(sys.argv[2], int(sys.argv[3]))"


def run_cases(cases: list[Case], workdir: Path, hang_seconds: float = HANG_SECONDS,
              env: dict[str, str] | None = None) -> dict[int, dict]:
    """Write the cases, run them in worker subprocesses; results by case index.

    A case whose worker died or stopped reporting gets {"crash": stage} or
    {"hang": stage}; the next worker starts after it."""
    workdir.mkdir(parents=True, exist_ok=True)
    items = []
    for c in cases:
        path = workdir / f"case{c.index:05d}_{c.base}.nnp"
        path.write_bytes(c.data)
        items.append({"i": c.index, "path": str(path)})
    manifest = workdir / "manifest.json"
    manifest.write_text(json.dumps(items))
    env = dict(os.environ) if env is None else env
    results: dict[int, dict] = {}
    position = 0
    while position < len(items):
        # stderr to a file (a full pipe would stall the worker); stdout read
        # unbuffered, so that select() sees every line as it comes.
        with open(workdir / "worker.stderr", "w+b") as err:
            proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(TESTS), str(manifest), str(position)],
                                    stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
            fd = proc.stdout.fileno()
            sel = selectors.DefaultSelector()
            sel.register(fd, selectors.EVENT_READ)
            current, stage = items[position]["i"], "start"
            failure, pending = None, b""
            while position < len(items) and failure is None:
                if b"\n" not in pending:
                    if not sel.select(timeout=hang_seconds):
                        proc.kill()
                        failure = "hang"
                    else:
                        chunk = os.read(fd, 1 << 16)
                        pending += chunk
                        if not chunk:
                            failure = "crash"
                    continue
                line, pending = pending.split(b"\n", 1)
                msg = json.loads(line)
                if "stage" in msg:
                    current, stage = msg["i"], msg["stage"]
                else:
                    results[msg["i"]] = msg
                    position += 1
            proc.wait()
            proc.stdout.close()
            sel.close()
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if failure and stage == "start":
            raise RuntimeError(f"the fuzz worker does not start:\n{stderr}")
        if failure:
            results[current] = {"i": current, failure: stage, "returncode": proc.returncode,
                                "stderr": stderr[-2000:]}
            position = next(k for k, it in enumerate(items) if it["i"] == current) + 1
    return results


# ----------------------------------------------------------------------------
# Verdicts

_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): \S")


def judge(case: Case, path: str, res: dict, base_eval: list | None) -> tuple[str, str]:
    """(outcome, detail): outcome is "rejected", "accepted" or a failure kind."""
    if "crash" in res or "hang" in res:
        kind = "crash" if "crash" in res else "hang"
        return kind, f"{kind} in {res[kind]} (rc {res.get('returncode')}): {res.get('stderr', '')[-300:]}"
    py, cpp, cpp_s, lmp = res["py"], res["cpp"], res["cpp_string"], res["lmp"]
    for name, r in (("python", py), ("core", cpp), ("core-from-string", cpp_s)):
        if r[0] not in ("ok", "error"):
            return "exception", f"{name}: {r[1]}"
    if (py[0] == "ok") != (cpp[0] == "ok"):
        return "disagreement", f"python {py}, core {cpp}"
    if cpp_s != cpp:
        return "disagreement", f"core from file {cpp}, from string {cpp_s}"
    n_lines = max(case.data.count(b"\n") + (0 if case.data.endswith(b"\n") else 1), 1)
    if py[0] == "error":
        if py[2] != "PotentialFileError":
            return "bad-message", f"python raised {py[2]}: {py[1]}"
        lines = []
        for name, msg in (("python", py[1]), ("core", cpp[1])):
            m = _LINE.match(msg)
            if not m or m["path"] != path or not 1 <= int(m["line"]) <= n_lines:
                return "bad-message", f"{name} message does not start with '{path}:LINE: ': {msg}"
            lines.append(int(m["line"]))
        if py[1] != cpp[1]:
            return "disagreement", f"different messages: python {py[1]} | core {cpp[1]}"
        if lmp[0] != "error" or cpp[1] not in lmp[1] or "nnp" not in lmp[1]:
            return "lammps", f"LAMMPS {lmp} for core error {cpp[1]}"
        if case.expect == "accept":
            return "wrongly-rejected", py[1]
        return "rejected", py[1]
    # Accepted by both readers.
    if not res.get("py_fixed_point"):
        return "disagreement", "what Python read, written and read again, is written differently"
    if res.get("py_core") != res.get("cpp_eval"):
        return "disagreement", "python and core read different numbers (energies/forces differ)"
    if "Si" not in res.get("elements", []):
        if lmp[0] != "error" or "element 'Si'" not in lmp[1]:
            return "lammps", f"a file without Si: LAMMPS {lmp}"
    elif lmp[0] != "ok":
        return "lammps", f"core accepts, LAMMPS: {lmp[1]}"
    core_eval, lmp_run = res.get("cpp_eval"), res.get("lmp_run")
    if core_eval is not None and core_eval[0] == "error":
        # A valid file whose model gives a non-finite energy (e.g. a huge weight).
        if lmp_run is None or lmp_run[0] != "error" or "non-finite" not in lmp_run[1] or "nnp" not in lmp_run[1]:
            return "lammps", f"core: {core_eval[1]}; LAMMPS run: {lmp_run}"
    elif core_eval is not None:
        if not (lmp_run and lmp_run[0] == "ok" and abs(lmp_run[1] - core_eval[0]) <= 1e-9 * max(1.0, abs(core_eval[0]))):
            return "lammps", f"LAMMPS run {lmp_run} vs core energy {core_eval[0]}"
    if case.expect == "reject":
        return "silently-accepted", "a broken file was accepted"
    if case.expect == "accept" and res.get("cpp_eval") != base_eval:
        return "changed", "an equivalent file gives different results"
    return "accepted", ""


def campaign(n: int, seed: int, workdir: Path) -> tuple[list[Case], dict[int, tuple[str, str]], float]:
    t0 = time.perf_counter()
    cases = generate(n, seed)
    bases = base_files()
    base_cases = [Case(-1 - k, name, "none", bases[name].encode(), "either") for k, name in enumerate(sorted(bases))]
    results = run_cases(base_cases + cases, workdir)
    base_eval = {}
    for c in base_cases:
        outcome, detail = judge(c, str(workdir / f"case{c.index:05d}_{c.base}.nnp"), results[c.index], None)
        assert outcome == "accepted", (c.base, outcome, detail, results[c.index])
        base_eval[c.base] = results[c.index]["cpp_eval"]
    verdicts = {}
    for c in cases:
        path = str(workdir / f"case{c.index:05d}_{c.base}.nnp")
        verdicts[c.index] = judge(c, path, results[c.index], base_eval[c.base])
    return cases, verdicts, time.perf_counter() - t0


# ----------------------------------------------------------------------------
# Tests


def test_base_files_are_valid():
    from nnp import _core
    from nnp.io import potential_file as pf

    for name, text in base_files().items():
        assert pf.loads(text, name).elements == (("Si", "Ge") if name == "sige" else ("Si",))
        assert (pf.loads(text, name).models["Si"].quadratic is not None) == (name == "quadratic")
        assert _core.Potential.from_string(text, name).elements == list(pf.loads(text).elements)


def test_generation_is_deterministic():
    a, b = generate(60), generate(60)
    assert [(c.mutation, c.data) for c in a] == [(c.mutation, c.data) for c in b]
    assert len({c.data for c in a}) > 50


def test_supervisor_attributes_crash_and_hang(tmp_path):
    """A worker killed by a signal, or silent for too long, is charged to the
    case and layer it was running; the other cases still run."""
    cases = generate(6)
    env = dict(os.environ, NNP_FUZZ_FAULTS="1:core=crash,3:lammps=hang")
    results = run_cases(cases, tmp_path, hang_seconds=2.0, env=env)
    assert sorted(results) == list(range(6))
    assert results[1]["crash"] == "core" and results[1]["returncode"] == -signal.SIGSEGV
    assert results[3]["hang"] == "lammps"
    verdicts = [judge(c, "", results[c.index], None)[0] for c in cases]
    assert verdicts[1] == "crash" and verdicts[3] == "hang"
    assert all("py" in results[k] and "lmp" in results[k] for k in (0, 2, 4, 5))


def test_fuzz_potential_files(tmp_path):
    cases, verdicts, seconds = campaign(N_CASES, SEED, tmp_path / "cases")
    counts = Counter(outcome for outcome, _ in verdicts.values())
    print(f"\n{len(cases)} mutated files in {seconds:.1f} s: {dict(counts)}")
    failures = [(c.index, c.mutation, *verdicts[c.index]) for c in cases
                if verdicts[c.index][0] not in ("rejected", "accepted")]
    report = "\n".join(f"case {i} ({op}): {outcome}: {detail}" for i, op, outcome, detail in failures[:20])
    assert not failures, f"{len(failures)} failures of {len(cases)}:\n{report}"
    assert counts["rejected"] > 0.6 * len(cases)
    assert counts["accepted"] > 0.05 * len(cases)  # the valid mutations were really checked
