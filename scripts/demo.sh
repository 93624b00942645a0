#!/usr/bin/env bash
# Placeholder until the brain demo lands.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
echo "demo: nothing to run yet"
