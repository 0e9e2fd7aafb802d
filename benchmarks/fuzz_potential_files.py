"""Fuzz campaign on the potential-file reader (the C++ parser, through
nnp._core, the Python view nnp.io.potential_file and LAMMPS).

Runs the engine of tests/test_fuzz.py on many more seeded mutations of the
valid files than the test does, and prints the number of cases per outcome
(overall and per kind of mutation):

    rejected            every layer rejected it with the same "FILE:LINE: ..." message
    accepted            every layer accepted it and read the same numbers (the
                        Python view, written back, is a fixed point and gives
                        the core's energies bit for bit)
    crash / hang        a layer killed or stalled the worker process
    exception           a reader raised something other than ValueError
    disagreement        one door accepts what another rejects (or another message, other numbers)
    bad-message         an error that does not name the file and an existing line
    lammps              LAMMPS did not give the core's result or error
    silently-accepted   a certainly broken file was accepted
    wrongly-rejected    a certainly valid file was rejected
    changed             a file equivalent to the base gave different results

    python benchmarks/fuzz_potential_files.py [--cases 10000] [--seed 1] [--keep DIR]

Exit status 1 if any case failed (anything but rejected/accepted).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_fuzz  # noqa: E402  (the engine lives with the test)

GOOD = ("rejected", "accepted")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1, help="campaign seed (the test uses %d)" % test_fuzz.SEED)
    p.add_argument("--keep", type=Path, help="write the mutated files here (default: a temporary directory)")
    p.add_argument("--show", type=int, default=20, help="failures to print in full")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nnp-fuzz-") as tmp:
        workdir = args.keep or Path(tmp)
        cases, verdicts, seconds = test_fuzz.campaign(args.cases, args.seed, workdir)

    counts = Counter(outcome for outcome, _ in verdicts.values())
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for c in cases:
        kind = c.mutation.split("+")[0] + (" (stacked)" if "+" in c.mutation else "")
        by_kind[kind][verdicts[c.index][0]] += 1
    outcomes = list(GOOD) + sorted(set(counts) - set(GOOD))

    print(f"{len(cases)} mutated potential files (seed {args.seed}), the C++ reader (file and string), "
          f"its Python view and LAMMPS pair_coeff/run 0, in {seconds:.1f} s\n")
    width = max(len(k) for k in by_kind) + 2
    print("mutation".ljust(width) + "".join(f"{o:>12}" for o in outcomes) + f"{'total':>8}")
    for kind in sorted(by_kind):
        row = by_kind[kind]
        print(kind.ljust(width) + "".join(f"{row[o]:>12}" for o in outcomes) + f"{sum(row.values()):>8}")
    print("all".ljust(width) + "".join(f"{counts[o]:>12}" for o in outcomes) + f"{len(cases):>8}")

    failures = [c for c in cases if verdicts[c.index][0] not in GOOD]
    print(f"\nfailures (crash, hang, disagreement, unclear message, ...): {len(failures)}")
    for c in failures[: args.show]:
        outcome, detail = verdicts[c.index]
        print(f"  case {c.index} [{c.base}, {c.mutation}]: {outcome}: {detail}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
