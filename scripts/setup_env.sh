#!/usr/bin/env bash
# Creates (once) the project's virtual environment in .venv and installs Diff-Listener into it.
# Sourced by scripts/demo.sh and scripts/test.sh, so a fresh machine with only Python needs nothing else.
#   - On a machine without an NVIDIA GPU, torch 2.13.0 comes from PyTorch's CPU wheel index so that no
#     multi-GB CUDA packages are pulled in (scripts/torch_source.sh; when that index does not answer within
#     15 s, torch==2.13.0 by name from pip's configured sources, and it says so); with a GPU, pip's default
#     (CUDA) torch is used.
#   - Re-running is cheap: a stamp file records the pyproject.toml it installed.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DIFF_LISTENER_VENV:-$repo_root/.venv}"
python_bin="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment in $venv"
    "$python_bin" -m venv "$venv"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"

stamp="$venv/.diff_listener_installed"
wanted="$(sha1sum "$repo_root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    if ! python -c "import torch" 2>/dev/null; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
            echo "[setup] installing CUDA torch"
            python -m pip install --quiet "torch>=2.4"
        else
            mapfile -t torch_source < <(bash "$repo_root/scripts/torch_source.sh")
            if ! python -m pip install --quiet "${torch_source[@]}"; then
                echo "[setup] that failed: installing torch==2.13.0 by name from pip's configured sources"
                python -m pip install --quiet "torch==2.13.0"
            fi
        fi
    fi
    torch_version="$(python -c 'import torch; print(torch.__version__.split("+")[0])')"
    echo "[setup] installing diff-listener (torch $torch_version kept)"
    python -m pip install --quiet -e "$repo_root[dev,data]" "torch==$torch_version"
    echo "$wanted" > "$stamp"
fi
