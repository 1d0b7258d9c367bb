"""The ``spikefold`` command: the demo end to end, and one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from spikefold.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--neurons", "32", "--steps", "16", "--samples", "2",
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    assert report["fold"]["mismatches"] == 0
    assert report["fold"]["checked"] == 32 * 65536
    assert report["network"]["test_samples"] == 540
    # Fixed point within 1 percentage point of float on the digits test split.
    assert abs(report["network"]["fixed_accuracy"] - report["network"]["float_accuracy"]) <= 0.01
    rtl = report["rtl"]
    assert rtl["samples"] == 2 and rtl["total_mismatches"] == 0
    assert rtl["rtl_accuracy"] == rtl["fixed_accuracy"]
    assert rtl["cycles_per_image"] > 0
    assert "RTL co-simulation" in (out / "report.md").read_text()
    assert "0 mismatches vs golden" in text


@pytest.mark.parametrize("argv, field", [
    (["verilog", "--tau", "1.5"], "tau"),
    (["verilog", "--membrane", "16.x"], "16.x"),
    (["demo", "--membrane", "4.9"], "Fixed.frac"),
    (["cosim", "--model", "no-such-file.npz"], "no-such-file.npz"),
    (["demo", "--board", "icebreaker"], "iCE40UP5K"),     # refused before the long stages
])
def test_errors_are_one_line(argv, field):
    proc = subprocess.run([sys.executable, "-m", "spikefold", *argv], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert field in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- one-line errors, validated before the work starts ------------------------------------

@pytest.fixture
def files(tmp_path):
    """A good core file and bad ones: truncated, text, a config without ``neurons``."""
    from golden.examples import example_core
    good = tmp_path / "core.npz"
    example_core(16).save(good)
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:300])
    (tmp_path / "text.npz").write_text("hello, not an archive\n")
    import numpy as np
    with np.load(good) as data:
        arrays = dict(data)
    config = json.loads(str(arrays["config"]))
    del config["neurons"]
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "no-neurons.npz", **arrays)
    (tmp_path / "a-file").write_text("x")
    return tmp_path


def _one_line(capsys, code, *needles):
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return captured


@pytest.mark.parametrize("command", [["verilog"], ["cosim"], ["build", "--board", "icebreaker"]])
@pytest.mark.parametrize("name, needles", [
    ("truncated.npz", ["truncated.npz", "truncated or damaged .npz"]),
    ("text.npz", ["text.npz", "not an .npz archive", "b'hell'"]),
    ("no-neurons.npz", ["no-neurons.npz", "config has no field 'neurons'"]),
])
def test_bad_core_files(files, capsys, command, name, needles):
    code = main([*command, "--model", str(files / name), "--out", str(files / "out")])
    captured = _one_line(capsys, code, *needles)
    assert "allow_pickle" not in captured.err
    assert not (files / "out").exists()          # refused before anything was written


@pytest.mark.parametrize("name, needles", [
    ("truncated.npz", ["truncated.npz", "not a spikefold model file", "truncated or damaged"]),
    ("text.npz", ["text.npz", "not a spikefold model file: not an .npz archive"]),
    ("core.npz", ["core.npz is a spikefold core file", "not a network model file"]),
])
def test_bad_model_files_in_demo(files, capsys, name, needles):
    code = main(["demo", "--model", str(files / name), "--samples", "0",
                 "--out", str(files / "out")])
    captured = _one_line(capsys, code, *needles)
    assert captured.out == ""                     # no stage ran


@pytest.mark.parametrize("out, needles", [
    ("a-file", ["--out", "a-file exists and is not a directory"]),
    ("a-file/sub", ["--out", "a-file/sub", "is a file, not a directory"]),
])
@pytest.mark.parametrize("command", [["verilog"], ["cosim"], ["demo", "--samples", "0"],
                                     ["build", "--board", "icebreaker", "--plan-only"]])
def test_output_directory_checked_first(files, capsys, command, out, needles):
    code = main([*command, "--out", str(files / out)])
    captured = _one_line(capsys, code, *needles)
    assert captured.out == ""


def test_read_only_output_directory(files, capsys, monkeypatch):
    import spikefold.cli
    ro = files / "ro"
    ro.mkdir()
    # Root may write anywhere, so the permission probe is what is exercised here (the
    # subprocess test below checks a real read-only directory when not run as root).
    real = spikefold.cli._writable
    monkeypatch.setattr(spikefold.cli, "_writable", lambda p: p != ro and real(p))
    code = main(["verilog", "--out", str(ro / "rtl")])
    _one_line(capsys, code, "--out", "ro/rtl", f"directory {ro} is not writable")
    assert not (ro / "rtl").exists()


@pytest.mark.skipif(getattr(os, "geteuid", lambda: 0)() == 0, reason="root writes anywhere")
def test_read_only_output_directory_subprocess(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = subprocess.run([sys.executable, "-m", "spikefold", "verilog", "-o",
                               str(ro / "rtl")], capture_output=True, text=True, timeout=300)
    finally:
        ro.chmod(0o755)
    assert proc.returncode == 2 and "not writable" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_train_out_directory_refused_before_training(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path), "--epochs", "1"])
    captured = _one_line(capsys, code, "--out", "is a directory")
    assert captured.out == ""


@pytest.mark.parametrize("argv, needle", [
    (["--bits", "1"], "--bits must be an integer in 2..48, not 1"),
    (["--weight-bits", "64"], "--weight-bits must be an integer in 2..48, not 64"),
    (["--epochs", "0"], "--epochs must be at least 1, not 0"),
    (["--batch", "1"], "--batch must be at least 2, not 1"),
    (["--lr", "-1"], "--lr must be a positive number, not -1.0"),
])
def test_train_options_refused_before_training(capsys, argv, needle):
    # With stderr captured (not a terminal) every epoch would log a line: one line means
    # no epoch ran.
    captured = _one_line(capsys, main(["train", *argv]), needle)
    assert captured.out == ""


@pytest.mark.parametrize("argv, needle", [
    (["--neurons", "0"], "--neurons must be at least 1, not 0"),
    (["--steps", "0"], "--steps must be at least 1, not 0"),
    (["--samples", "-1"], "--samples must be at least 0, not -1"),
    (["--samples", "541"], "at most the 540 test samples"),
])
def test_demo_options_refused_before_results(tmp_path, capsys, argv, needle):
    captured = _one_line(capsys, main(["demo", *argv, "--out", str(tmp_path / "d")]), needle)
    assert captured.out == ""                     # nothing printed before the error


@pytest.mark.parametrize("command", [["verilog"], ["cosim"]])
def test_huge_arrays_refused_up_front(tmp_path, capsys, command):
    import time
    t0 = time.perf_counter()
    code = main([*command, "--neurons", "10000000", "--out", str(tmp_path / "o")])
    _one_line(capsys, code, "--neurons 10,000,000", "340 Mbit", "use at most")
    assert time.perf_counter() - t0 < 5
    assert not (tmp_path / "o").exists()


def test_rtl_json_errors_name_the_users_file(tmp_path, capsys):
    rtl = tmp_path / "rtl"
    assert main(["verilog", "-o", str(rtl)]) == 0
    bad = tmp_path / "mine.json"
    bad.write_text("not json")
    build = tmp_path / "build"
    code = main(["cosim", "--rtl", str(rtl / "spikefold_lif_array.v"), "--rtl-json", str(bad),
                 "--build-dir", str(build)])
    captured = _one_line(capsys, code, f"--rtl-json {bad}", "not a readable RTL description")
    assert str(build) not in captured.err
    desc = json.loads((rtl / "spikefold_lif_array.json").read_text())
    del desc["top"]
    bad.write_text(json.dumps(desc))
    code = main(["cosim", "--rtl", str(rtl / "spikefold_lif_array.v"), "--rtl-json", str(bad),
                 "--build-dir", str(build)])
    _one_line(capsys, code, f"--rtl-json {bad}", "no field 'top'")


@pytest.mark.parametrize("argv, needles", [
    (["cosim"], ["co-simulation needs Icarus Verilog", "apt-get install iverilog"]),
    (["demo", "--samples", "1"], ["RTL stage needs Icarus Verilog", "apt-get install iverilog",
                                  "--samples 0"]),
])
def test_missing_icarus_has_an_install_hint(tmp_path, argv, needles):
    empty = tmp_path / "bin"                      # a PATH without iverilog
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    proc = subprocess.run([sys.executable, "-m", "spikefold", *argv, "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr
    assert proc.stdout == ""


def test_train_progress_is_off_with_quiet_and_off_a_terminal(capsys):
    from golden.train_cli import _progress
    assert _progress(3, "epoch", True, "train") == (None, None)
    log, bar = _progress(3, "epoch", False, "train")
    assert bar.disable                            # captured stderr is not a terminal
    log("epoch   1/3  loss 0.5000")
    bar.close()
    assert capsys.readouterr().err == "epoch   1/3  loss 0.5000\n"   # the plain log instead


def test_demo_ticker_is_silent_off_a_terminal(capsys):
    from spikefold.demo import ticker
    with ticker("co-simulating") as bar:
        assert bar.disable
    with ticker("co-simulating", quiet=True) as bar:
        assert bar.disable
    assert capsys.readouterr().err == ""
