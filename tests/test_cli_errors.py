"""One error rule for every command line (DESIGN.md §4): a user or input error is one line
``<program>: error: <message>`` on stderr and exit code 2; a bug keeps its traceback.

Each CLI is given an input file that does not exist (or, for the synthetic worlds that read nothing, an
output under a regular file) and must refuse it in one line that names the program and the file.
"""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from utils.cli import cli_main
from utils.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
MISSING = "no_such_input"

# (module, program name in the message, argv builder taking tmp_path). The offending path contains MISSING.
CLIS = [
    ("brain.sample", "brain.sample",
     lambda d: ["--checkpoint", str(d / "c.pth"), "--audio", str(d / f"{MISSING}.npy"),
                "--visual", str(d / f"{MISSING}.npy"), "--out", str(d / "m.npy")]),
    ("brain.evaluate", "brain.evaluate",
     lambda d: ["--data", str(d / MISSING), "--baselines", "mirror", "--out", str(d / "eval"), "--device", "cpu"]),
    ("scene.render", "scene.render",
     lambda d: ["-m", str(d / MISSING), "--ply", str(d / "head.ply"), "--device", "cpu"]),
    ("train_diffusion", "train_diffusion.py",
     lambda d: ["--config", str(REPO_ROOT / "configs" / "brain_tiny.yaml"), "--data", str(d / MISSING),
                "--out", str(d / "brain")]),
    ("train_body", "train_body.py",
     lambda d: ["-s", str(d / MISSING), "-m", str(d / "body"), "--config", str(REPO_ROOT / "configs" / "body_tiny.yaml")]),
    ("synthesize_listener", "synthesize_listener.py",
     lambda d: ["--audio", str(d / f"{MISSING}.npy"), "--visual", str(d / f"{MISSING}.npy"),
                "--body_checkpoint", str(d), "--brain_checkpoint", str(d / f"{MISSING}.pth"),
                "--output", str(d / "out.mp4")]),
    ("data_utils.emoca_io", "data_utils.emoca_io", lambda d: [str(d / MISSING), "--out", str(d / "codes.npy")]),
    ("data_utils.vico", "data_utils.vico",
     lambda d: ["--root", str(d / MISSING), "--emoca", str(d), "--wav2vec", str(d), "--out", str(d / "corpus")]),
    ("data_utils.wav2vec", "data_utils.wav2vec",
     lambda d: ["--wav", str(d / f"{MISSING}.wav"), "--model", str(d), "--out", str(d / "f.npy"), "--device", "cpu"]),
    ("data_utils.process", "data_utils.process",
     lambda d: [str(d / f"{MISSING}.mp4"), "--emoca", str(d), "--out", str(d / "subject")]),
    ("data_utils.synthetic_dyadic", "data_utils.synthetic_dyadic",
     lambda d: ["--out", str(d / "file" / MISSING), "--clips", "3", "--seconds", "2"]),
    ("data_utils.synthetic_subject", "data_utils.synthetic_subject",
     lambda d: ["--out", str(d / "file" / MISSING), "--frames", "2", "--size", "16"]),
    ("benchmarks.fd_analysis", "benchmarks/fd_analysis.py", lambda d: ["--data", str(d / MISSING)]),
]


@pytest.mark.parametrize("module, program, make_argv", CLIS, ids=[c[0] for c in CLIS])
def test_every_cli_refuses_a_missing_input_in_one_line_with_exit_code_2(module, program, make_argv, tmp_path, capsys):
    (tmp_path / "file").write_text("a regular file, so nothing can be written below it")
    if module == "benchmarks.fd_analysis":
        sys.path.insert(0, str(REPO_ROOT))
    main = importlib.import_module(module).main
    code = main(make_argv(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"{program}: error: ") and MISSING in err, err


def test_a_bug_keeps_its_traceback_and_the_message_is_one_line(capsys):
    @cli_main("prog")
    def user_error(argv=None):
        raise InputError("bad.npy: expected shape [T,56],\n  got [3]")

    @cli_main("prog")
    def bug(argv=None):
        raise KeyError("a bug")

    assert user_error() == 2
    assert capsys.readouterr().err == "prog: error: bad.npy: expected shape [T,56], got [3]\n"
    with pytest.raises(KeyError):
        bug()


def test_the_exit_code_reaches_the_shell():
    result = subprocess.run([sys.executable, "-m", "data_utils.emoca_io", MISSING, "--out", "x.npy"],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("data_utils.emoca_io: error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# Outputs that cannot be written are refused before any work: the checkpoint / model / corpus named here
# does not exist either, so a CLI that loaded its inputs first would complain about those instead.
OUTPUT_CASES = [
    ("brain.sample", "--out", lambda d: ["--checkpoint", str(d / "c.pth"), "--audio", str(d / "a.npy"),
                                         "--visual", str(d / "v.npy"), "--out", str(d / "file" / "m.npy")]),
    ("brain.sample", "--out", lambda d: ["--checkpoint", str(d / "c.pth"), "--audio", str(d / "a.npy"),
                                         "--visual", str(d / "v.npy"), "--out", str(d / "folder")]),
    ("brain.sample", "--plot", lambda d: ["--checkpoint", str(d / "c.pth"), "--audio", str(d / "a.npy"),
                                          "--visual", str(d / "v.npy"), "--out", str(d / "m.npy"),
                                          "--plot", str(d / "file" / "m.png")]),
    ("scene.render", "--out", lambda d: ["-m", str(d / "model"), "--flame", str(d / "f.npy"), "--out", str(d / "file")]),
    ("scene.render", "--out", lambda d: ["-m", str(d / "model"), "--flame", str(d / "f.npy"),
                                         "--out", str(d / "file" / "frames")]),
    ("scene.render", "--ply", lambda d: ["-m", str(d / "model"), "--ply", str(d / "folder")]),
    ("brain.evaluate", "--out", lambda d: ["--data", str(d / "corpus"), "--out", str(d / "file"), "--device", "cpu"]),
    ("synthesize_listener", "--output", lambda d: ["--audio", str(d / "a.npy"), "--visual", str(d / "v.npy"),
                                                   "--body_checkpoint", str(d / "body"),
                                                   "--brain_checkpoint", str(d / "c.pth"),
                                                   "--output", str(d / "file" / "out.mp4")]),
]


@pytest.mark.parametrize("module, flag, make_argv", OUTPUT_CASES,
                         ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(OUTPUT_CASES)])
def test_an_unwritable_output_is_refused_before_any_work(module, flag, make_argv, tmp_path, capsys):
    (tmp_path / "file").write_text("a regular file")
    (tmp_path / "folder").mkdir()
    code = importlib.import_module(module).main(make_argv(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"error: {flag} " in err, err
    assert not (tmp_path / "m.npy").exists()
