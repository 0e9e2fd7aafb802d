"""Running the study: every missing stage of the selected points, stage by
stage over all points (cheap stages first), with time estimates, failures
recorded instead of raised, and points whose descriptor equals an earlier
one's (A64 and B64) copied instead of recomputed."""

from __future__ import annotations

import math
import shutil
import time
import traceback
from typing import Callable, Sequence

import numpy as np

from nnp import descriptors as descriptors_mod
from nnp.io.atomic import atomic_open
from nnp.progress import fmt_time
from nnp.study.config import STAGE_TITLES, STAGES
from nnp.study.stages import RUNNERS, STAGE_ERRORS, Context, headline, md_cost

REPORT_INTERVAL_S = 1800.0  # rewrite the report at least this often in long passes
DEFAULT_SPEED = 30e-6  # s/atom/step before anything was measured


class Estimator:
    """Rough wall-time estimates of stages from what finished so far."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def _measured(self, stage: str) -> list[float]:
        vals = []
        for p in self.ctx.config.points:
            r = self.ctx.sdir.result(p, stage)
            if r and r.get("status") == "done" and r.get("wall_s"):
                vals.append(r["wall_s"])
        return vals

    def speed(self, point: str) -> float:
        """s/atom/step of a point's potential: its own melt/crystal run, else the mean."""
        own, every = [], []
        for p in self.ctx.config.points:
            for stage in ("melt", "crystal"):
                r = self.ctx.sdir.result(p, stage)
                if r and r.get("status") == "done" and r.get("seconds_per_atom_step"):
                    (own if p == point else every).append(r["seconds_per_atom_step"])
        vals = own or every
        return float(np.mean(vals)) if vals else DEFAULT_SPEED

    def stage(self, stage: str, point: str) -> float:
        cost = md_cost(stage, self.ctx.config)
        if cost:
            return cost * self.speed(point)
        vals = self._measured(stage)
        return float(np.mean(vals)) if vals else math.nan

    def remaining(self, todo: Sequence[tuple[str, str]]) -> str:
        """"about 3h10m", or "over 3h10m" while some stage kind has no measurement yet."""
        est = [self.stage(s, p) for s, p in todo if twin_of(self.ctx, p) is None]
        known = [e for e in est if math.isfinite(e)]
        if not known:
            return "an unknown time"
        return f"{'about' if len(known) == len(est) else 'over'} {fmt_time(sum(known))}"


def _status(ctx: Context, point: str, stage: str) -> str | None:
    r = ctx.sdir.result(point, stage)
    return r.get("status") if r else None


def pending(ctx: Context, points: Sequence[str], retry_failed: bool) -> list[tuple[str, str]]:
    todo = []
    for stage in STAGES:
        for p in points:
            st = _status(ctx, p, stage)
            if st == "done" or (st == "failed" and not retry_failed):
                continue
            todo.append((stage, p))
    return todo


def run_study(ctx: Context, points: Sequence[str], retry_failed: bool = False,
              write_outputs: Callable[[], None] | None = None) -> None:
    """Every missing stage of every point in `points`, stage by stage."""
    est = Estimator(ctx)
    todo = pending(ctx, points, retry_failed)
    total = len(todo)
    if not todo:
        ctx.log("every stage of the selected points is done")
    last_outputs = time.perf_counter()
    for k, (stage, point) in enumerate(todo):
        if stage != "train":
            trained = _status(ctx, point, "train")
            if trained != "done":
                ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}: skipped (no potential: training "
                        f"{'failed' if trained == 'failed' else 'not done'})")
                continue
        if _status(ctx, point, stage) == "done":
            # Another process sharing DIR finished it since the list was made.
            ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}: done meanwhile by another process")
            continue
        twin = twin_of(ctx, point)
        if twin is not None and _status(ctx, twin, stage) in ("done", "failed"):
            copy_twin(ctx, twin, point, stage)
            ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}: the same descriptor as {twin}, "
                    f"its result reused")
            continue
        remaining = est.remaining(todo[k:])
        cost = md_cost(stage, ctx.config)
        what = f", {cost:,} atom-steps" if cost else ""
        ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}{what} — study {fmt_time(time.perf_counter() - ctx.t_start)}"
                f" so far, {remaining} to go")
        t0 = time.perf_counter()
        try:
            data = RUNNERS[stage](ctx, point)
            status = {"status": "done"}
        except STAGE_ERRORS as err:
            message = f"{type(err).__name__}: {err}"
            ctx.log(f"    {point} {stage} FAILED: {message}")
            data = {}
            status = {"status": "failed", "error": message,
                      "where": traceback.format_exc(limit=-3).strip().splitlines()[-3:]}
        wall = time.perf_counter() - t0
        ctx.sdir.save(point, stage, {**status, "stage": stage, "point": point, "wall_s": wall, **data})
        shutil.rmtree(ctx.sdir.checkpoint(point, stage), ignore_errors=True)
        if status["status"] == "done":
            ctx.log(f"    {point} {stage} done in {fmt_time(wall)}{headline(stage, data)}")
        end_of_pass = k + 1 == total or todo[k + 1][0] != stage
        if write_outputs and (end_of_pass or time.perf_counter() - last_outputs > REPORT_INTERVAL_S):
            write_outputs()
            last_outputs = time.perf_counter()


def twin_of(ctx: Context, point: str) -> str | None:
    """An earlier point of the study with exactly the same descriptor (A64
    and B64 both hold every function): same data, split, seed and settings,
    so the same potential and results."""
    if point not in ctx.twins:
        mine = descriptors_mod.preset(point, (ctx.element,))
        earlier = ctx.config.points[: ctx.config.points.index(point)]
        ctx.twins[point] = next((q for q in earlier if descriptors_mod.preset(q, (ctx.element,)) == mine), None)
    return ctx.twins[point]


def copy_twin(ctx: Context, twin: str, point: str, stage: str) -> None:
    sdir = ctx.sdir
    data = sdir.result(twin, stage)
    if stage == "train" and data.get("status") == "done":
        sdir.point(point).mkdir(parents=True, exist_ok=True)
        with atomic_open(sdir.potential(point), binary=True) as fh:
            fh.write(sdir.potential(twin).read_bytes())
    if stage == "validation" and sdir.parity(twin).is_dir():
        shutil.copytree(sdir.parity(twin), sdir.parity(point), dirs_exist_ok=True)
    samples = sdir.point(twin) / f"{stage}_samples.npz"
    if samples.is_file():
        sdir.point(point).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples, sdir.point(point) / samples.name)
    sdir.save(point, stage, {**data, "point": point, "same_as": twin, "wall_s": 0.0})
