"""scripts/demo.sh's step reuse, keyed on each step's inputs, with a stand-in ``python`` that records every
call and writes placeholder outputs (the real steps take minutes; their own tests are elsewhere)."""
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Records argv, then writes what the real step would leave behind (placeholders).
STAND_IN_PYTHON = """#!{python}
import os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["DEMO_CALLS"], "a") as calls:
    calls.write(" ".join(args) + "\\n")
value = lambda flag: Path(args[args.index(flag) + 1])
command = " ".join(args)
if "synthetic_dyadic" in command:
    out = value("--out")
    (out / "splits").mkdir(parents=True, exist_ok=True)
    (out / "splits" / "test.txt").write_text("clip_0007\\n")
    (out / "meta.json").write_text("{{}}")
elif "synthetic_subject" in command:
    value("--out").mkdir(parents=True, exist_ok=True)
    (value("--out") / "meta.json").write_text("{{}}")
elif "train_diffusion.py" in command:
    value("--out").mkdir(parents=True, exist_ok=True)
    (value("--out") / "checkpoint.pth").write_text(command)
elif "train_body.py" in command:
    value("-m").mkdir(parents=True, exist_ok=True)
    (value("-m") / "body.pth").write_text(command)
elif "synthesize_listener.py" in command:
    output, samples = value("--output"), int(args[args.index("--num_samples") + 1])
    names = [output.name] if samples == 1 else [f"{{output.stem}}_s{{k}}.mp4" for k in range(samples)] + [
        f"{{output.stem}}_grid.mp4"]
    output.parent.mkdir(parents=True, exist_ok=True)
    for name in names + [output.stem + ".npy", output.stem + ".png"]:
        (output.parent / name).write_text("video")
"""


def run_demo(tmp_path, **env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    python.write_text(STAND_IN_PYTHON.format(python=sys.executable))
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DEMO_CALLS": str(calls),
                   "DEMO_SKIP_SETUP": "1", "DEMO_PRESET": "tiny", "DEMO_OUT": str(tmp_path / "demo"), **env}
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "demo.sh")], cwd=REPO_ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    words = [line.split() for line in calls.read_text().splitlines()]
    return [call[1] if call[0] == "-m" else Path(call[0]).name for call in words], result.stdout


def test_a_rerun_reuses_only_steps_whose_inputs_are_unchanged(tmp_path):
    steps, _ = run_demo(tmp_path)
    assert steps == ["data_utils.synthetic_dyadic", "data_utils.synthetic_subject", "train_diffusion.py",
                     "train_body.py", "synthesize_listener.py"]
    steps, out = run_demo(tmp_path)
    assert steps == [] and out.count("reusing") == 5
    videos = tmp_path / "demo" / "videos"
    assert sorted(p.name for p in videos.glob("*.mp4")) == ["clip_0007_grid.mp4", "clip_0007_s0.mp4",
                                                            "clip_0007_s1.mp4", "clip_0007_s2.mp4"]
    # more listeners: only the videos are redone, and the 3-sample set does not linger beside the new one
    steps, out = run_demo(tmp_path, DEMO_SAMPLES="5")
    assert steps == ["synthesize_listener.py"] and "made from other inputs" in out
    assert sorted(p.name for p in videos.glob("*_s*.mp4")) == [f"clip_0007_s{k}.mp4" for k in range(5)]
    assert run_demo(tmp_path, DEMO_SAMPLES="5")[0] == []


def test_an_interrupted_training_continues_and_its_dependants_are_redone(tmp_path):
    run_demo(tmp_path)
    (tmp_path / "demo" / "brain" / ".demo_done").unlink()  # as if the brain's training had been stopped
    steps, _ = run_demo(tmp_path)
    calls = (tmp_path / "calls.txt").read_text()
    assert steps == ["train_diffusion.py", "synthesize_listener.py"] and "--resume" in calls
