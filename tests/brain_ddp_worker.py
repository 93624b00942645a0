"""One process of the 2-process DDP check in ``tests/test_brain_ddp.py`` (run there under torchrun, gloo on CPU).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/brain_ddp_worker.py <work> <corpus> [key=value ...]

Each process joins one gloo process group (train() uses a group its caller opened) and trains three runs of
the same config: ``<work>/runs/whole`` uninterrupted; ``<work>/runs/resumed``
crashed on every rank during step CRASH_STEP (after the checkpoint of step CHECKPOINT_EVERY and the log rows of
the step before the crash), then resumed. It writes ``<work>/rank<R>.pt``: its own final weights and every file
it created, replaced, opened for writing or deleted under ``<work>/runs`` (seen through a Python audit hook,
so no write path of the trainer is left out).
"""
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import train_diffusion
from brain.config import BrainConfig
from utils.config import load_config

CHECKPOINT_EVERY = 4
CRASH_STEP = 5  # step index: steps 1..5 are logged, the last checkpoint is of step 4
MAX_STEPS = 8
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Crash(Exception):
    """The simulated fault, raised on every rank at the same step (one rank alone would hang the others)."""


def record_writes(runs: Path, writes: list[str]) -> None:
    runs = str(runs)

    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
            paths = [path] if writing else []
        elif event in ("os.rename", "os.replace"):
            paths = [args[1]]
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
            paths = [args[0]]
        else:
            return
        writes.extend(str(p) for p in paths if isinstance(p, (str, os.PathLike)) and str(p).startswith(runs))

    sys.addaudithook(audit)


def main(work: Path, corpus: str, overrides: list[str]) -> None:
    rank = int(os.environ["RANK"])
    writes: list[str] = []
    record_writes(work / "runs", writes)
    modules: dict[str, torch.nn.Module] = {}
    update_ema = train_diffusion.update_ema

    def update_ema_or_crash(ema, model, decay, step, crash_at=None):
        modules.update(model=model, ema=ema)  # this rank's own modules, not DDP's wrapper
        if step == crash_at:
            raise Crash(f"rank {rank}: simulated crash in step {step}")
        update_ema(ema, model, decay, step)

    def run(name: str, *, resume: bool = False, crash_at: int | None = None) -> None:
        train_diffusion.update_ema = lambda *args: update_ema_or_crash(*args, crash_at=crash_at)
        cfg = load_config(BrainConfig, "configs/brain_tiny.yaml",
                          [f"data={corpus}", f"out={work / 'runs' / name}", f"train.max_steps={MAX_STEPS}",
                           f"train.checkpoint_every={CHECKPOINT_EVERY}", *overrides])
        train_diffusion.train(cfg, resume=resume, progress=False)

    dist.init_process_group("gloo")
    run("whole")
    try:
        run("resumed", crash_at=CRASH_STEP)
    except Crash:
        pass
    run("resumed", resume=True)
    dist.destroy_process_group()
    torch.save({"writes": writes, **{name: module.state_dict() for name, module in modules.items()}},
               work / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
