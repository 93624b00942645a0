#!/usr/bin/env bash
# Sets up the environment (first run only) and runs the CPU test suite.
#   bash scripts/test.sh                 # everything that runs on this machine
#   bash scripts/test.sh -k normalizer   # extra arguments go to pytest
# GPU tests (marked `gpu`) run only where CUDA is available.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
# Two worker processes (a test file stays on one, so its trained fixtures are built once): the suite's
# tests are single-threaded (tests/conftest.py), and two of them at once take 3.9 min instead of 6.6 on
# 2 cores. TEST_WORKERS=0 runs them in this process.
exec python -m pytest -q -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
