"""The study directory: where each result lives, what must match for stored
results to be reused, and the checks made before any work.

    DIR/study.json            settings, data digest and training settings (the identity)
    DIR/points/R/STAGE.json   the result of one stage of one run R: a point run with
                              the network is named as the point (A16), with the GP A16-gp
    DIR/superseded/TIME/      results moved aside by --update

The GP's settings (train.gp_*) are part of the identity, but only the GP's
runs depend on them; a directory made before the study had `models` (no
study.models, no gp_* settings) reads as one of the network alone.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from nnp.analysis.report import json_clean
from nnp.io.atomic import atomic_open
from nnp.study.config import MODEL_NAMES, MODELS, STAGE_SETTINGS, STAGES, StudyConfig, split_run
from nnp.study.report import OUTPUT_FILES

FORMAT = "nnp-study 1"


class StudyError(ValueError):
    """Bad input or a study directory that cannot be used as asked."""


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        json.dump(json_clean(data), fh, indent=1, allow_nan=False, ensure_ascii=False)
        fh.write("\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise StudyError(f"{path} is not valid JSON ({err}); delete it to recompute that stage") from None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_differences(stored: dict, current: dict) -> list[str]:
    a, b = _flatten(stored), _flatten(current)
    return [f"{k}: stored {a.get(k, '(unset)')!r}, now {b.get(k, '(unset)')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


class StudyDir:
    """Where everything lives: DIR/study.json, DIR/points/P/STAGE.json, ..."""

    CONFIG = "study.json"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        # Parsed stage files by path, with the (mtime, size) they were read at:
        # progress estimates read every result often; another process sharing
        # DIR (disjoint --points) may write new ones.
        self._cache: dict[Path, tuple[tuple[int, int], Any]] = {}

    @property
    def config_file(self) -> Path:
        return self.root / self.CONFIG

    def point(self, p: str) -> Path:
        """The folder of run `p` (a run name: config.run_name)."""
        return self.root / "points" / p

    def stage_file(self, p: str, stage: str) -> Path:
        return self.point(p) / f"{stage}.json"

    def potential(self, p: str) -> Path:
        return self.point(p) / "potential.nnp"

    def checkpoint(self, p: str, stage: str) -> Path:
        return self.point(p) / f"{stage}.checkpoint"

    def parity(self, p: str) -> Path:
        return self.point(p) / "validation"

    def result(self, p: str, stage: str) -> dict | None:
        path = self.stage_file(p, stage)
        try:
            st = path.stat()
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(path)
        if hit is None or hit[0] != stamp:
            hit = (stamp, read_json(path))
            self._cache[path] = hit
        return hit[1]

    def save(self, p: str, stage: str, data: dict) -> None:
        write_json(self.stage_file(p, stage), data)

    def remove_results(self) -> None:
        """Everything the study wrote (and nothing else)."""
        shutil.rmtree(self.root / "points", ignore_errors=True)
        for name in (self.CONFIG, *OUTPUT_FILES):
            (self.root / name).unlink(missing_ok=True)


def _gp_key(key: str) -> bool:
    return key.startswith("gp_")


# Training settings that are per run, or that change the numbers no more
# than the thread count does (the order of sums): resources and logging.
# Left out of the identity, so a new setting of this kind (auto_stored_limit)
# does not make every stored study refuse to resume.
NOT_IDENTITY = ("descriptor", "model", "threads", "log_every", "device", "checkpoint_every", "memory_budget",
                "chunk_size", "auto_stored_limit")


def identity(config: StudyConfig, data_digest: str, n_structures: int) -> dict[str, Any]:
    """What must match for stored results to be reused."""
    train = config.train_config(config.points[0]).as_dict()
    for k in NOT_IDENTITY:
        train.pop(k, None)
    return json_clean({
        "format": FORMAT,
        "study": config.as_dict(),
        "train": train,
        "data_sha256": data_digest,
        "structures": n_structures,
    })


def comparable(stored: dict, current: dict) -> tuple[dict, dict]:
    """The two identities as they are compared. A stored identity from
    before the study had `models` lacks study.models (the network alone)
    and, from before the GP, the gp_* settings: those are then left out of
    both (no GP result can depend on them). The NOT_IDENTITY settings that
    older identities hold are left out."""
    out = []
    gp_settings = any(_gp_key(k) for k in (stored.get("train") or {}))
    for ident in (stored, current):
        ident = copy.deepcopy(ident)
        ident.setdefault("study", {}).setdefault("models", ["nn"])
        train = ident.get("train")
        if isinstance(train, dict):
            ident["train"] = {k: v for k, v in train.items()
                              if k not in NOT_IDENTITY and (gp_settings or not _gp_key(k))}
        out.append(ident)
    return out[0], out[1]


def stage_identity(ident: dict, stage: str, model: str = "nn") -> dict:
    """The part of a study identity that a stage's results depend on, for
    the runs of `model`: the network's do not depend on the GP's settings."""
    def own(train: Any) -> Any:
        if model == "gp" or not isinstance(train, dict):
            return train
        return {k: v for k, v in train.items() if not _gp_key(k)}

    study = {k: ident.get("study", {}).get(k) for k in STAGE_SETTINGS[stage]}
    if "train" in study:  # the study's overrides, as given (the resolved ones are ident["train"])
        study["train"] = own(study["train"])
    return {"format": ident.get("format"), "data_sha256": ident.get("data_sha256"),
            "structures": ident.get("structures"), "train": own(ident.get("train")), "study": study}


def stale_stages(stored: dict, current: dict, model: str = "nn") -> list[str]:
    """Stages of `model`'s runs whose settings differ between two identities."""
    old, new = comparable(stored, current)
    # Flattened, as config_differences compares: an empty mapping added to
    # the settings (a new option left at its default) changes nothing.
    return [s for s in STAGES
            if _flatten(stage_identity(old, s, model)) != _flatten(stage_identity(new, s, model))]


def supersede(sdir: StudyDir, stages: Sequence[str] | dict[str, Sequence[str]]) -> Path | None:
    """Move every stored result of `stages` (stage files, samples, MD
    checkpoints; the potential with training, the parity plots with
    validation) to DIR/superseded/TIME/points/R/, never deleting them.
    `stages`: of every run, or a mapping model -> stages of its runs."""
    moved = None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    points_dir = sdir.root / "points"
    for pdir in sorted(points_dir.iterdir()) if points_dir.is_dir() else []:
        p = pdir.name
        for stage in stages.get(split_run(p)[1], ()) if isinstance(stages, dict) else stages:
            paths = [sdir.stage_file(p, stage), sdir.checkpoint(p, stage), pdir / f"{stage}_samples.npz"]
            paths += {"train": [sdir.potential(p)], "validation": [sdir.parity(p)]}.get(stage, [])
            for path in paths:
                if path.exists():
                    moved = sdir.root / "superseded" / stamp
                    dest = moved / "points" / p / path.name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(path), dest)
    return moved


def prepare_directory(sdir: StudyDir, ident: dict, extra: dict, restart: bool, force: bool,
                      update: bool = False, log: Callable[[str], None] = print) -> None:
    """Create or check DIR before any work: refuse a foreign non-empty
    directory (unless force) and results of other settings (unless restart,
    or update: keep what the changed settings do not touch)."""
    root = sdir.root
    if root.exists() and not root.is_dir():
        raise StudyError(f"{root} exists and is not a directory")
    stored = read_json(sdir.config_file) if root.is_dir() else None
    ours = stored is not None  # a study directory: the study may write there
    if stored is not None and restart:
        sdir.remove_results()
        stored = None
    if stored is not None:
        old, new = comparable(stored.get("identity", {}), ident)
        diffs = config_differences(old, new)
        if not diffs:
            return
        # Every model, not only those of either identity: a model dropped
        # earlier by --update may have left runs behind.
        stale = {m: stale_stages(old, new, m) for m in MODELS}
        if not update:
            shown = "\n  ".join(diffs[:12]) + (f"\n  ... ({len(diffs)} in all)" if len(diffs) > 12 else "")
            raise StudyError(
                f"{root} holds results of different settings:\n  {shown}\n"
                f"refusing to mix them: use another --out, --update to keep the results these changes do "
                f"not affect and rerun {_rerun(stale, old, new)} (the old results are moved to "
                f"{root / 'superseded'}), or --restart to discard the stored results"
            )
        moved = supersede(sdir, stale)
        log(f"settings changed ({len(diffs)}): rerunning {_rerun(stale, old, new, short=True)}"
            + (f"; the superseded results are in {moved}" if moved else ""))
        write_json(sdir.config_file, {**stored, "identity": ident, "updated": extra.get("created")})
        return
    if root.is_dir() and any(root.iterdir()) and not (force or ours):
        raise StudyError(
            f"{root} exists, is not empty and is not a study directory (no {StudyDir.CONFIG}); "
            "choose a new or empty --out, or --force to write the study into it "
            "(files with the study's output names would be overwritten)"
        )
    root.mkdir(parents=True, exist_ok=True)
    write_json(sdir.config_file, {"identity": ident, **extra})


def _rerun(stale: dict[str, list[str]], old: dict, new: dict, short: bool = False) -> str:
    """What --update reruns, in words: "crystal", "nothing", or per model
    ("train, … for the GP; nothing for the network"); and the runs it adds."""
    models = new["study"]["models"]
    kept = [m for m in models if m in old["study"]["models"]]
    per = {m: ", ".join(stale[m]) or "nothing" for m in kept}
    if len(set(per.values())) <= 1:
        text = next(iter(per.values()), "nothing")
    else:
        text = "; ".join(f"{v} for the {MODEL_NAMES[m]}" for m, v in per.items())
    if short:
        return text
    added = [m for m in models if m not in kept]
    if added:
        runs = " and the ".join(MODEL_NAMES[m] for m in added)
        return (f"nothing: it adds the runs of the {runs} and keeps every stored result" if text == "nothing"
                else f"{text}, and add the runs of the {runs}")
    return "nothing (only the point selection changed)" if text == "nothing" else text
