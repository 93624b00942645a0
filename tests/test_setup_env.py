"""scripts/torch_source.sh: where setup_env.sh gets CPU torch from (the choice only; nothing is installed)."""
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "torch_source.sh"


def choose(index: str, timeout: float = 15) -> tuple[list[str], str, float]:
    """Run the script against ``index``: its pip arguments, its message and how long it took."""
    env = dict(os.environ, PYTHON=sys.executable, DIFF_LISTENER_TORCH_INDEX=index,
               DIFF_LISTENER_TORCH_TIMEOUT=str(timeout))
    start = time.monotonic()
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split(), result.stderr.strip(), time.monotonic() - start


@pytest.fixture
def closed_port():
    with socket.socket() as probe:  # a port nothing listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_index_falls_back_to_the_plain_name_quickly(closed_port):
    args, message, seconds = choose(f"http://127.0.0.1:{closed_port}/whl/cpu")
    assert args == ["torch==2.13.0"]
    assert "could not be reached" in message and "by name from pip's configured sources" in message
    assert seconds < 10


def test_an_index_that_never_answers_is_given_up_after_the_timeout():
    with socket.socket() as silent:  # accepts connections (backlog) but never sends a byte
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        args, message, seconds = choose(f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu", timeout=1)
    assert args == ["torch==2.13.0"] and "limit 1 s" in message
    assert 1 <= seconds < 8


def test_an_answering_index_is_used_with_a_short_timeout_and_no_retries():
    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        index = f"http://127.0.0.1:{server.server_port}/whl/cpu"
        args, message, _ = choose(index)
    finally:
        server.shutdown()
    assert args == ["--index-url", index, "--timeout", "15", "--retries", "0", "torch==2.13.0"]
    assert "from PyTorch's CPU wheel index" in message
