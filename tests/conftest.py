"""Test tiers and the test process's threads.

* CPU tests run everywhere; tests marked ``gpu`` need CUDA and are skipped without it.
* One intra-op thread for the whole suite (and the CLIs it starts as subprocesses): the suite's models and
  images are tiny, so each op is dominated by per-op overhead, and on a 2-core machine a second OpenMP
  thread costs more than it gives (measured several times slower for the tiny brain's sampling).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (run the suite on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
