"""Files that appear whole or not at all, and the digest that names them.

Every file nnp writes (potentials, checkpoints, reports, data) goes through
`atomic_open`: a run killed mid-write leaves the previous file, never half of
a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, binary: bool = False):
    """A file to write that appears at `path` only when complete.

    It is written next to `path` under a temporary name, flushed to disk and
    renamed over `path` on success (removed on error), so a reader never sees
    a half-written file. Missing parent directories are created. The new file
    gets the usual permissions (0666 less the umask).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 random name collisions
        raise FileExistsError(f"cannot create a temporary file next to {path}")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path) as f:
        f.write(text)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes: the provenance digest of data and
    potential files."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
