"""Labelling with pw.x single points, appended to the run's data file.

Every labelled frame carries a `learn_id` (e.g. `seed-0003`, `i002-c0041`)
and is appended and fsynced the moment pw.x finishes (`nnp.dft.append_frame`),
so a kill loses at most the single point in progress. Before labelling, the
ids already in the data file, and those pw.x failed on (`dft_failed.jsonl`),
are skipped: a frame is never labelled twice.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import ase.io
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from nnp.dft import DFTError, QESettings, _qe_error, append_frame, complete_frames_length

FAILED_FILE = "dft_failed.jsonl"


def repair(path: Path) -> int:
    """Cut a frame left incomplete by a kill off the end of `path`; the
    number of complete frames."""
    if not path.exists():
        return 0
    n, length = complete_frames_length(path)
    if length < path.stat().st_size:
        print(f"{path}: dropping an incomplete last frame ({path.stat().st_size - length} bytes)", file=sys.stderr)
        with open(path, "r+b") as fh:
            fh.truncate(length)
            fh.flush()
            os.fsync(fh.fileno())
    return n


def labelled_ids(path: Path) -> list[str]:
    """learn_id of every frame of the data file (in order)."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    return [str(a.info.get("learn_id", "")) for a in ase.io.read(path, ":", format="extxyz")]


def failed_records(directory: Path) -> dict[str, dict]:
    """The frames pw.x failed on: id -> {"error", "dft_wall_s"}."""
    path = directory / FAILED_FILE
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        out[item["id"]] = item
    return out


def tally(data: Path, directory: Path, ids) -> dict:
    """Of the frames `ids`: how many are labelled in `data`, how many pw.x
    failed on (in `directory`), and the pw.x wall time of both. Read from the
    files, so a kill between two labels loses no count."""
    ids = set(ids)
    frames = [a for a in (ase.io.read(data, ":", format="extxyz") if data.stat().st_size else [])
              if a.info.get("learn_id") in ids]
    failed = [r for i, r in failed_records(directory).items() if i in ids]
    return {"labelled": len(frames), "dft_failed": len(failed),
            "dft_s": sum(float(a.info.get("dft_wall_s", 0.0)) for a in frames)
            + sum(float(r.get("dft_wall_s", 0.0)) for r in failed)}


def _append_line(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def single_point(atoms: Atoms, qe: QESettings, workdir: Path) -> dict:
    """Energy, forces and stress of `atoms` from one pw.x run (DFTError on failure)."""
    a = atoms.copy()
    a.calc = qe.calculator(workdir)
    try:
        a.get_potential_energy()
    except Exception as err:  # pw.x crashed, did not converge, or wrote no readable output
        raise DFTError(f"pw.x failed ({type(err).__name__}: {err}){_qe_error(workdir)}") from None
    return {k: a.calc.results[k] for k in ("energy", "free_energy", "forces", "stress") if k in a.calc.results}


def labelled_frame(atoms: Atoms, results: dict, learn_id: str, signature: dict, extra: dict) -> Atoms:
    frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update(signature)
    frame.info.update(extra)
    frame.info["learn_id"] = learn_id
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


def label_frames(items: Sequence[tuple[str, Atoms, dict]], data: Path, directory: Path, qe: QESettings,
                 log, compute: Callable[[Atoms, QESettings, Path], dict] | None = None) -> dict:
    """Label every (id, structure, info) not labelled (or failed) before and
    append it to `data`. Returns counts and the pw.x wall time of this call."""
    compute = compute or single_point
    repair(data)
    done = set(labelled_ids(data))
    failed = failed_records(directory)
    workdir = directory / "qe"
    workdir.mkdir(parents=True, exist_ok=True)
    signature = qe.signature()
    stats = {"labelled": 0, "failed": 0, "skipped": 0, "dft_s": 0.0}
    for learn_id, atoms, extra in items:
        if learn_id in done or learn_id in failed:
            stats["skipped"] += 1
            continue
        t0 = time.perf_counter()
        try:
            results = compute(atoms, qe, workdir)
        except DFTError as err:
            dt = time.perf_counter() - t0
            stats["dft_s"] += dt
            _append_line(directory / FAILED_FILE, json.dumps({"id": learn_id, "error": str(err)[:500],
                                                              "dft_wall_s": round(dt, 3)}))
            stats["failed"] += 1
            log(f"  {learn_id}: {err}")
            continue
        dt = time.perf_counter() - t0
        stats["dft_s"] += dt
        frame = labelled_frame(atoms, results, learn_id, signature, {**extra, "dft_wall_s": round(dt, 3)})
        append_frame(data, frame)
        stats["labelled"] += 1
        log(f"  labelled {learn_id} ({len(atoms)} atoms, {dt:.1f} s): E {results['energy'] / len(atoms):.4f} eV/atom")
    return stats
