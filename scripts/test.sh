#!/usr/bin/env bash
# Sets up the environment (first run only) and runs the CPU test suite.
#   bash scripts/test.sh                 # everything that runs on this machine
#   bash scripts/test.sh -k normalizer   # extra arguments go to pytest
# GPU tests (marked `gpu`) run only where CUDA is available.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
exec python -m pytest -q "$@"
