"""train_diffusion.py under torchrun: 2 processes (gloo on CPU) train one model, rank 0 alone writes the run
folder, and a run crashed between checkpoints resumes to the weights of an uninterrupted one."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train_diffusion
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.checkpoint import load_checkpoint
from utils.config import ConfigError
from utils.logger import read_scalars

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "brain_ddp_worker.py"
TINY = ["model.width=32", "model.history_frames=12", "train.batch_size=16", "train.warmup_steps=2",
        "train.log_every=1", "train.val_every=4", "train.val_windows=16", "train.device=cpu"]


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("ddp")
    corpus = write_synthetic_corpus(work / "corpus", clips=6, seconds=8, seed=0)
    result = torchrun(str(WORKER), str(work), str(corpus), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, [torch.load(work / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]


def test_only_rank_zero_writes_the_run_folder(ddp_runs):
    work, (rank0, rank1) = ddp_runs
    assert rank1["writes"] == []
    written = {Path(path).name for path in rank0["writes"]}  # atomic writes end in a rename to the final name
    assert {"checkpoint.pth", "scalars.csv", "config.yaml"} <= written, written


def test_ranks_end_with_identical_weights(ddp_runs):
    _, (rank0, rank1) = ddp_runs
    for part in ("model", "ema"):
        for name, tensor in rank0[part].items():
            assert torch.equal(rank1[part][name], tensor), f"{part}.{name} differs between ranks"


def test_a_crashed_ddp_run_resumes_to_the_uninterrupted_weights_and_log(ddp_runs):
    work, (rank0, _) = ddp_runs
    whole = load_checkpoint(work / "runs" / "whole" / "checkpoint.pth", kind="brain")
    resumed = load_checkpoint(work / "runs" / "resumed" / "checkpoint.pth", kind="brain")
    assert whole["step"] == resumed["step"] == 8
    for part in ("model", "ema"):
        for name, tensor in whole[part].items():
            assert torch.equal(resumed[part][name], tensor), f"{part}.{name}"
            assert torch.equal(rank0[part][name], tensor), f"rank 0's {part}.{name} is not what it saved"
    whole_log = read_scalars(work / "runs" / "whole" / "scalars.csv")
    resumed_log = read_scalars(work / "runs" / "resumed" / "scalars.csv")
    assert [step for step, _ in resumed_log["loss"]] == list(range(1, 9))  # step 5 logged once, not twice
    assert resumed_log == whole_log


def test_under_torchrun_an_explicit_device_is_honoured(monkeypatch):
    """``train.device=cuda`` on a machine without CUDA is refused, not silently replaced by the CPU."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(Exception, match="CUDA is not available"):
        train_diffusion.Distributed("cuda")


@pytest.mark.gpu
def test_under_torchrun_train_device_cpu_stays_on_the_cpu(tmp_path):
    corpus = write_synthetic_corpus(tmp_path / "corpus", clips=6, seconds=8, seed=0)
    result = torchrun("train_diffusion.py", "--config", "configs/brain_tiny.yaml", "--data", str(corpus),
                      "--out", str(tmp_path / "run"), *TINY, "train.max_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "device cpu, 2 process(es)" in result.stdout


@pytest.mark.gpu
def test_under_torchrun_a_gpu_index_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ConfigError, match="each process uses the GPU of its LOCAL_RANK"):
        train_diffusion.Distributed("cuda:0")
