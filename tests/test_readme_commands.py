"""The README's "Using it" commands work as written: they are run in order, in one shell, on tiny data.

Every command line of the block is taken from README.md itself (continuation lines joined), so a line added
there is run here too. Only sizes change, through ``SIZES`` below (each entry must still match the README, so
the table cannot silently go stale); ``SKIPPED`` lists what is not run and why. ``python`` entry points run
in this process through their ``main(argv)`` (one torch import instead of one per line; the exit-code wiring
of ``python -m`` is tested in test_cli_errors.py), variables the block sets (``CLIP=...``) are expanded as
bash would, and any other line runs through bash. A wrong flag, a wrong ``key=value`` key or a file that an
earlier line does not write stops the run, and the test names the README line.
"""
import importlib
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# (README text, what runs instead): sizes only. The presets are swapped for their tiny twins, which hold the
# same fields at CPU sizes (width, layers, Gaussian counts), so every override is still checked against the
# same config classes.
SIZES = [
    ("--clips 200", "--clips 5"),
    ("--seconds 60", "--seconds 2"),
    ("--frames 4500", "--frames 12"),
    ("--size 512", "--size 32"),
    ("configs/brain_config.yaml", "configs/brain_tiny.yaml"),
    ("configs/body.yaml", "configs/body_tiny.yaml"),
    ("train.max_steps=12000", "train.max_steps=2 train.batch_size=16 train.val_windows=8"),
    ("train.max_steps=14000", "train.max_steps=3 train.batch_size=16 train.val_windows=8"),
    ("train.max_steps=30000", "train.max_steps=2 train.val_frames=1 model.init.face_count=200"),
    ("--samples 10", "--samples 2"),
    ("--num_samples 3", "--num_samples 2"),
    ("--steps 10", "--steps 2"),
    (" --device cuda", ""),  # a GPU-only flag: the same command runs on the CPU
]
# (how a skipped line starts, why)
SKIPPED = [
    ("torchrun ", "starts one process per GPU; DDP has its own test"),
    ("python synthesize_listener.py --stream --realtime --wav speaker.wav --wav2vec",
     "needs a local wav2vec 2.0 model folder and runs on the wall clock; tests/test_synthesis_cli.py runs the live "
     "path from a voice with a tiny random Wav2Vec2"),
    ("bash scripts/train_xx.sh", "the full GPU schedule (CUDA_VISIBLE_DEVICES, body.yaml with gsplat densification); "
                                 "it runs the train_body.py and scene.render commands tested here"),
]


def readme_commands(text: str) -> list[str]:
    """Command lines of the first bash block after "## Using it", continuation lines joined, comments kept."""
    block = re.search(r"^## Using it\n.*?```bash\n(.*?)```", text, re.S | re.M)
    assert block, "README.md has no ```bash block under '## Using it'"
    joined = re.sub(r"\\\n\s*", "", block.group(1))
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def tiny(command: str) -> str:
    for readme_text, replacement in SIZES:
        command = command.replace(readme_text, replacement)
    return command


def skip_reason(command: str) -> str | None:
    return next((why for start, why in SKIPPED if command.startswith(start)), None)


def test_the_size_table_matches_the_readme():
    commands = readme_commands((REPO_ROOT / "README.md").read_text())
    for readme_text, _ in SIZES:
        assert any(readme_text in command for command in commands), f"SIZES entry {readme_text!r} is not in README.md"
    for start, _ in SKIPPED:
        assert any(command.startswith(start) for command in commands), f"SKIPPED entry {start!r} is not in README.md"


def expand(command: str, variables: dict[str, str]) -> str:
    """``$NAME`` / ``${NAME}`` from the variables the block assigned (a name it never set is an error)."""
    def value(match):
        name = match.group(1) or match.group(2)
        assert name in variables, f"${name} is used before the README sets it: {command}"
        return variables[name]
    return re.sub(r"\$(?:(\w+)|\{(\w+)\})", value, command)


def python_entry(words: list[str]) -> tuple[str, list[str]] | None:
    """``python -m pkg.mod ARGS`` / ``python path/mod.py ARGS`` -> (module name, ARGS); None for anything else."""
    if words[0] != "python" or len(words) < 2:
        return None
    if words[1] == "-m":
        return words[2], words[3:]
    if words[1].endswith(".py"):
        return words[1][:-3].replace("/", "."), words[2:]
    return None


def run_command(command: str, variables: dict[str, str], work: Path) -> tuple[int, str]:
    """Run one README line in ``work``: an assignment through bash, ``python`` entry points in this process (one
    torch import for the whole block instead of one per line), anything else through bash."""
    assignment = re.match(r"(\w+)=", command)
    if assignment:
        name = assignment.group(1)
        result = subprocess.run(["bash", "-c", f'set -e\n{command}\nprintf %s "${name}"'], cwd=work,
                                capture_output=True, text=True, env={**os.environ, **variables})
        variables[name] = result.stdout
        return result.returncode, result.stderr
    words = shlex.split(expand(command, variables), comments=True)
    entry = python_entry(words)
    if entry is None:
        result = subprocess.run(words, cwd=work, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        return result.returncode, result.stderr
    module, argv = entry
    try:
        return importlib.import_module(module).main(argv), ""
    except SystemExit as exit_:  # argparse refusing a flag
        return exit_.code, ""


def test_the_readme_commands_run_in_order_on_tiny_data(tmp_path, monkeypatch, capfd):
    commands = readme_commands((REPO_ROOT / "README.md").read_text())
    run = [command for command in commands if skip_reason(command) is None]
    assert len(run) >= 10 and len(commands) - len(run) == len(SKIPPED)
    # The README is run from a checkout: its configs beside the data it writes.
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "configs").symlink_to(REPO_ROOT / "configs")
    monkeypatch.chdir(work)
    variables: dict[str, str] = {}
    for command in run:
        code, stderr = run_command(tiny(command), variables, work)
        if code != 0:
            pytest.fail(f"README command failed (exit {code}):\n  {command}\nas run: {tiny(command)}\n"
                        f"--- stderr (end) ---\n{(stderr or capfd.readouterr().err)[-3000:]}")
        capfd.readouterr()
    assert (work / "out" / "listener_grid.mp4").is_file() and (work / "frames" / "000000.png").is_file()
