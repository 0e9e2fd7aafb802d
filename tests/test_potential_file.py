"""The potential file: the Python view (nnp.io.potential_file) and the C++
core read the same numbers through the core's one parser and write them back
bit for bit; malformed files give errors naming file and line."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import random_potential, rattled_si, test_descriptor

from nnp import _core
from nnp.io import potential_file as pf


@pytest.fixture(scope="module")
def text(si_potential):
    return si_potential.read_text()


def test_python_round_trip_is_exact(si_potential, text):
    pot = pf.read(si_potential)
    assert pf.dumps(pot) == text
    again = pf.loads(pf.dumps(pot))
    for e in pot.elements:
        a, b = pot.models[e], again.models[e]
        assert a.reference_energy == b.reference_energy
        for la, lb in zip(a.layers, b.layers):
            assert np.array_equal(la.weights, lb.weights) and np.array_equal(la.biases, lb.biases)
        for name in ("center", "width", "min", "max"):
            assert np.array_equal(getattr(a.scaling, name), getattr(b.scaling, name))
    assert pot.descriptors == again.descriptors


def test_awkward_numbers_round_trip(tmp_path):
    """Values whose shortest repr needs all 17 digits survive writing."""
    d = test_descriptor()
    pot = random_potential(d, [rattled_si()])
    w = pot.models["Si"].layers[0].weights
    w[0, :4] = [0.1 + 0.2, 1 / 3, np.nextafter(1.0, 2.0), 5e-324]
    path = pf.write(pot, tmp_path / "x.nnp")
    assert np.array_equal(pf.read(path).models["Si"].layers[0].weights, w)


def test_cpp_reader_agrees_with_python(si_potential, text):
    pot = _core.Potential(str(si_potential))
    same = _core.Potential.from_string(text, "memory")
    assert pot.elements == ["Si"] and same.elements == ["Si"]
    assert pot.cutoff == pf.read(si_potential).descriptors.cutoff
    atoms = rattled_si((2, 2, 2), 0.1, 9)
    args = (atoms.positions, np.zeros(len(atoms), np.int32), atoms.cell.array, [True] * 3)
    assert pot.evaluate(*args)["energy"] == same.evaluate(*args)["energy"]


def test_refuses_to_overwrite(tmp_path, si_potential):
    pot = pf.read(si_potential)
    path = tmp_path / "Si.nnp"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        pf.write(pot, path)
    assert path.read_text() == "precious"
    pf.write(pot, path, overwrite=True)
    assert pf.read(path).elements == ("Si",)
    assert [p.name for p in tmp_path.iterdir()] == ["Si.nnp"]  # no temporary left behind


def _line_of(text: str, pattern: str) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(pattern, line):
            return n
    raise AssertionError(pattern)


def _mutations(text: str):
    """(name, broken text, line the error must name, words the message must contain)."""
    lines = text.splitlines()
    n_lines = len(lines)

    def replace(pattern, new):
        n = _line_of(text, pattern)
        out = lines.copy()
        out[n - 1] = new(out[n - 1])
        return "\n".join(out) + "\n", n

    yield ("version", *replace(r"nnp-potential", lambda s: "nnp-potential 2"), "version")
    yield ("magic", *replace(r"nnp-potential", lambda s: "hello 1"), "not an nnp potential")
    yield ("units", *replace(r"units", lambda s: "units real"), "metal")
    yield ("cutoff", *replace(r"cutoff_function", lambda s: "cutoff_function gauss"), "cutoff function")
    yield ("sum", *replace(r"angular_sum", lambda s: "angular_sum double"), "angular_sum")
    yield ("element", *replace(r"G2 ", lambda s: s.replace("Si", "Xx", 1)), "Xx")
    yield ("lambda", *replace(r"G4 ", lambda s: " ".join(s.split()[:5] + ["0"] + s.split()[6:])), "lambda")
    yield ("nan", *replace(r"G2 ", lambda s: s.replace(s.split()[2], "nan")), "finite")
    yield ("word", *replace(r"G2 ", lambda s: s.replace(s.split()[2], "abc")), "number")
    yield ("huge-rc", *replace(r"G2 ", lambda s: " ".join(s.split()[:4] + ["1e6"])), "rc must be <= 30")
    yield ("act", *replace(r"activations", lambda s: "activations tanh relu linear"), "activation")
    n = _line_of(text, r"layer 1 ")
    short = lines.copy()
    short[n] = " ".join(short[n].split()[:-1])
    yield ("short-row", "\n".join(short) + "\n", n + 1, "expected")
    cut = "\n".join(lines[: n_lines // 2]) + "\n"
    yield ("truncated", cut, n_lines // 2, "ends early")
    no_end = "\n".join(lines[:-1]) + "\n"
    yield ("no-end", no_end, n_lines - 1, "'end'")


@pytest.mark.parametrize("case", range(14))
def test_malformed_files_name_file_and_line(tmp_path, text, case):
    name, broken, line, words = list(_mutations(text))[case]
    path = tmp_path / f"{name}.nnp"
    path.write_text(broken)
    with pytest.raises(ValueError) as py_err:
        pf.read(path)
    with pytest.raises(ValueError) as cpp_err:
        _core.Potential(str(path))
    for err in (py_err, cpp_err):
        msg = str(err.value)
        assert msg.startswith(f"{path}:{line}:"), msg
        assert words.lower() in msg.lower(), msg


def test_bad_scaling_row(tmp_path, text):
    lines = text.splitlines()
    n = _line_of(text, r"scaling ") + 2
    lines[n - 1] = "0 -1 0 1"
    path = tmp_path / "width.nnp"
    path.write_text("\n".join(lines) + "\n")
    for read in (pf.read, lambda p: _core.Potential(str(p))):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:{n}: .*width > 0"):
            read(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pf.read(tmp_path / "nope.nnp")
    with pytest.raises(ValueError, match="cannot open"):
        _core.Potential(str(tmp_path / "nope.nnp"))
    garbage = tmp_path / "garbage.nnp"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=f"{garbage}:1:"):
        pf.read(garbage)
    with pytest.raises(ValueError, match=f"{garbage}:1:"):
        _core.Potential(str(garbage))
