"""The `nnp` command (python -m nnp): subcommands, shared options, and user
errors that end in one line saying what to do, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest
from conftest import REPO, SI_DATA

import nnp
from nnp import NNPCalculator, cli
from nnp.data import read_structures
from nnp.descriptors import preset, resolve
from nnp.descriptors.presets import canonical_preset

SUBCOMMAND_HELP = [["train"], ["evaluate"], ["data"], ["data", "summary"], ["study"], ["convert"],
                   ["convert", "n2p2"], ["dft"], ["dft", "aimd"], ["committee"]]
TINY = REPO / "tests" / "data" / "tiny.nnp"


def run_nnp(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m nnp ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "nnp", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_console_script_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["nnp"] == "nnp.cli:main"
    module, func = project["scripts"]["nnp"].split(":")
    assert getattr(cli, func) is cli.main and module == cli.__name__


def test_version():
    proc = run_nnp("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"nnp {nnp.__version__}"


def test_help_lists_every_subcommand():
    proc = run_nnp("--help")
    assert proc.returncode == 0
    for s in cli.SUBCOMMANDS:
        assert any(line.split()[:1] == [s.name] and len(line.split()) > 1 for line in proc.stdout.splitlines()), s.name


def test_unknown_subcommand(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("args", SUBCOMMAND_HELP, ids=" ".join)
def test_subcommand_help(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*args, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_train_missing_data_is_one_line(tmp_path):
    line = assert_one_line_error(run_nnp("train", "--data", tmp_path / "missing.xyz", "--output", tmp_path / "x.nnp"))
    assert "missing.xyz" in line and "does not exist" in line
    assert not (tmp_path / "x.nnp").exists()


def test_output_options_are_consistent(capsys):
    """-o/--output everywhere something is written; study's --out kept."""
    from nnp.study.cli import parse_args as study_args

    for flag in ("-o", "--output", "--out"):
        assert study_args(["--data", "d.xyz", flag, "dir"]).out == "dir"
    for args in (["committee"], ["convert", "n2p2"], ["dft", "aimd"], ["evaluate"], ["study"]):
        with pytest.raises(SystemExit):
            cli.main([*args, "--help"])
        out = capsys.readouterr().out
        assert "-o " in out and "--output" in out and "--force" in out, args


# ------------------------------------------- output paths checked before work


def test_committee_creates_the_output_directory(tmp_path):
    out = tmp_path / "nodir" / "sub" / "mean.nnp"
    assert cli.main(["committee", str(TINY), str(TINY), "-o", str(out)]) == 0
    assert out.is_file()


def test_outputs_under_a_file_are_refused_before_work(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    cases = [
        ("committee", TINY, TINY, "-o", blocker / "m.nnp"),
        ("convert", "n2p2", REPO / "tests" / "data" / "n2p2-si", "-o", blocker / "c.nnp"),
        ("evaluate", "--potential", TINY, "--data", SI_DATA, "-o", blocker / "report"),
        ("study", "--data", tmp_path / "missing.xyz", "-o", blocker / "study"),
        ("train", "--data", tmp_path / "missing.xyz", "-o", blocker / "x.nnp"),
        ("train", "--data", tmp_path / "missing.xyz", "-o", tmp_path / "x.nnp", "--report", blocker / "r"),
        ("dft", "aimd", "--protocol", "crystal", "-o", blocker / "a.xyz", "--command", "true"),
        ("dft", "aimd", "--protocol", "crystal", "-o", tmp_path / "a.xyz", "--workdir", blocker / "qe",
         "--command", "true"),
    ]
    for case in cases:
        proc = run_nnp(*case, cwd=tmp_path)
        line = assert_one_line_error(proc)
        assert "afile" in line, (case, line)
        assert "does not exist" not in line, (case, line)  # refused before the data was read
    assert blocker.read_text() == "x"


def test_existing_output_needs_force(tmp_path, capsys):
    out = tmp_path / "m.nnp"
    out.write_text("keep")
    assert cli.main(["committee", str(TINY), str(TINY), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "keep"
    assert cli.main(["committee", str(TINY), str(TINY), "-o", str(out), "--force"]) == 0


def test_prepare_output_file(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        cli.prepare_output_file(tmp_path, overwrite=True)
    target = tmp_path / "a" / "b" / "c.txt"
    assert cli.prepare_output_file(target, overwrite=False) == target and target.parent.is_dir()
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="permission"):
            cli.prepare_output_file(locked / "x" / "y.nnp", overwrite=False)


# ------------------------------------------------- errors that say what to do


def test_unknown_file_type_names_the_known_formats(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    with pytest.raises(ValueError) as err:
        read_structures(junk)
    message = str(err.value)
    assert str(junk) in message and "extxyz" in message and "n2p2" in message and "--format" in message
    line = assert_one_line_error(run_nnp("evaluate", "--potential", TINY, "--data", junk))
    assert "--format" in line and "frame 0" not in line


def _si_frames(tmp_path, count=2) -> list[str]:
    lines = SI_DATA.read_text().splitlines()
    frames, at = [], 0
    for _ in range(count):
        n = int(lines[at])
        frames.append(lines[at:at + n + 2])
        at += n + 2
    return frames


def test_malformed_extxyz_gives_the_line(tmp_path):
    first, second = _si_frames(tmp_path)
    bad = list(second)
    bad[4] = " ".join(bad[4].split()[:5])  # atom 2 of frame 1 loses its last two force columns
    path = tmp_path / "bad.xyz"
    path.write_text("\n".join(first + bad) + "\n")
    bad_line = len(first) + 5
    with pytest.raises(ValueError, match=rf"bad.xyz: frame 1: .*line {bad_line}: atom 2 of frame 1 has 5 columns"):
        read_structures(path)
    path.write_text("\n".join(first + second[:10]) + "\n")  # cut short
    with pytest.raises(ValueError, match=rf"line {len(first) + 10}: the file ends after 8 of the"):
        read_structures(path)


def test_plain_xyz_says_extxyz_has_the_labels(tmp_path):
    path = tmp_path / "labelled.xyz"
    path.write_text("\n".join(_si_frames(tmp_path, 1)[0]) + "\n")
    assert len(read_structures(path)) == 1
    with pytest.raises(ValueError, match="plain XYZ, which holds no energies.*--format extxyz"):
        read_structures(path, format="xyz")


def test_missing_potential_is_file_not_found(tmp_path):
    missing = tmp_path / "missing.nnp"
    with pytest.raises(FileNotFoundError) as err:
        NNPCalculator(missing)
    assert err.value.filename == str(missing) and str(missing) in str(err.value)


def test_descriptor_names_in_any_case_and_close_matches():
    assert canonical_preset("c64") == "C64" and canonical_preset("a40-WIDE") == "A40-wide"
    assert canonical_preset("w16") == "W16"
    assert resolve("a16", ["Si"]) == resolve("A16", ["Si"]) == preset("a16")
    with pytest.raises(ValueError, match="did you mean A64") as err:
        resolve("A65", ["Si"])
    assert "B28-wide" not in str(err.value)  # suggestions, not the whole list
    with pytest.raises(ValueError, match="unknown descriptor preset 'zzz'; Presets are"):
        canonical_preset("zzz")


# ------------------------------------------------ the potential, one way


def test_potential_is_given_with_potential_everywhere(tmp_path, capsys):
    """-p/--potential names the potential file in every command that reads
    one; the older positional form is accepted too; --force always means
    overwrite existing outputs."""
    for args in (["evaluate"], ["committee"]):
        with pytest.raises(SystemExit):
            cli.main([*args, "--help"])
        out = capsys.readouterr().out
        assert "-p FILE, --potential FILE" in out or "-p FILE [FILE ...], --potential FILE [FILE ...]" in out, args
    for args in (["train"], ["evaluate"], ["committee"], ["convert", "n2p2"], ["dft", "aimd"]):
        with pytest.raises(SystemExit):
            cli.main([*args, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "--force overwrite" in help_text, args
    for form in (["--potential", TINY, TINY], ["-p", TINY, TINY], [TINY, TINY]):
        out = tmp_path / f"mean{len(list(tmp_path.iterdir()))}.nnp"
        assert cli.main(["committee", *map(str, form), "-o", str(out)]) == 0, form
        assert out.is_file()
    assert cli.main(["committee", "-p", str(TINY), "-o", str(tmp_path / "one.nnp")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_evaluate_takes_the_potential_either_way(tmp_path, capsys):
    data = tmp_path / "two.xyz"
    data.write_text("\n".join(line for frame in _si_frames(tmp_path, 2) for line in frame) + "\n")
    assert cli.main(["evaluate", "--potential", str(TINY), "--data", str(data)]) == 0
    named = capsys.readouterr().out
    assert cli.main(["evaluate", str(TINY), "--data", str(data)]) == 0
    assert capsys.readouterr().out == named and "meV/atom" in named
    for both_or_none in ([str(TINY), "--potential", str(TINY)], []):
        with pytest.raises(SystemExit) as exc:
            cli.main(["evaluate", *both_or_none, "--data", str(data)])
        assert exc.value.code == 2
        assert "give the potential file once: --potential FILE" in capsys.readouterr().err


# ------------------------------------------------ plain xyz in data summary


def test_data_summary_says_plain_xyz_has_no_labels(tmp_path, capsys):
    labelled = tmp_path / "labelled.xyz"
    labelled.write_text("\n".join(_si_frames(tmp_path, 1)[0]) + "\n")
    assert cli.main(["data", "summary", "--format", "xyz", str(labelled)]) == 1
    out = capsys.readouterr().out
    assert "hint: format xyz is plain XYZ, which holds no energies" in out and "--format extxyz" in out
    assert cli.main(["data", "summary", str(labelled)]) == 0
    assert "hint" not in capsys.readouterr().out
    plain = tmp_path / "plain.xyz"
    plain.write_text("2\n\nSi 0 0 0\nSi 1.4 1.4 1.4\n")
    assert cli.main(["data", "summary", str(plain)]) == 1
    out = capsys.readouterr().out
    assert "hint: no frame has an energy: the file holds positions only (plain XYZ)" in out
    assert "energy=" in out and "forces:R:3" in out


def test_interrupt_is_one_line(monkeypatch, capsys):
    """Ctrl-C in a command that has nothing to resume: exit status 130 and
    one line, not a traceback."""
    import nnp.committee

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(nnp.committee, "main", interrupted)
    assert cli.main(["committee", "a.nnp", "-o", "b.nnp"]) == 130
    assert capsys.readouterr().err.strip() == "nnp committee: interrupted"


def test_a_directory_given_as_a_potential(tmp_path):
    line = assert_one_line_error(run_nnp("committee", "-p", TINY, REPO / "tests" / "data" / "n2p2-si",
                                         "-o", tmp_path / "m.nnp"))
    assert "is a directory" in line and "nnp convert n2p2" in line
