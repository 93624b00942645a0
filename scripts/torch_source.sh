#!/usr/bin/env bash
# Where a machine without an NVIDIA GPU gets torch from (used by setup_env.sh). Prints the pip arguments, one a
# line, and says on stderr which source was chosen:
#   - PyTorch's own CPU wheel index, when it answers within DIFF_LISTENER_TORCH_TIMEOUT seconds (15): the public
#     package index's Linux torch wheel is the CUDA build, which pulls about 18 nvidia/triton packages;
#   - otherwise torch by name from pip's configured sources (on the development machines and CI: a local CPU
#     wheel; on a machine whose only source is the public package index: the CUDA build).
#   DIFF_LISTENER_TORCH_INDEX overrides the index (the tests point it at addresses that never answer).
set -euo pipefail
version="${DIFF_LISTENER_TORCH_VERSION:-2.13.0}"
index="${DIFF_LISTENER_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
timeout="${DIFF_LISTENER_TORCH_TIMEOUT:-15}"

# The probe runs in a thread so that the limit also bounds a name lookup that hangs (urlopen's timeout does not).
if "${PYTHON:-python}" - "${index%/}/torch/" "$timeout" <<'EOF'
import sys
import threading
import urllib.request

url, limit = sys.argv[1], float(sys.argv[2])
answered = []
def probe():
    try:
        urllib.request.urlopen(url, timeout=limit).close()
        answered.append(True)
    except Exception:
        pass
worker = threading.Thread(target=probe, daemon=True)
worker.start()
worker.join(limit)
sys.exit(0 if answered else 1)
EOF
then
    echo "[setup] installing CPU torch $version from PyTorch's CPU wheel index ($index)" >&2
    printf '%s\n' --index-url "$index" --timeout "$timeout" --retries 0 "torch==$version"
else
    echo "[setup] PyTorch's CPU wheel index ($index) could not be reached (limit $timeout s):" \
         "installing torch==$version by name from pip's configured sources" >&2
    printf '%s\n' "torch==$version"
fi
