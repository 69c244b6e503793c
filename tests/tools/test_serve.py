"""tools/serve.py as a user runs it: uvicorn listening on 127.0.0.1, the URL printed, a real request over
TCP, a clean stop on SIGTERM. (Its refusals run in-process: tests/serving/test_config.py.)"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mnet_vision.benchmarks.serve import free_port
from tests.helpers.cli import REPO

STARTUP_S = 180  # a guard against a server that never comes up, not a speed limit


def test_the_tool_serves_over_tcp_and_stops_cleanly(detection_run):
    env = {k: v for k, v in os.environ.items() if k != "MNET_SERVE_TOKEN"} | {"PYTHONPATH": str(REPO)}
    port = free_port()
    server = subprocess.Popen([sys.executable, str(REPO / "tools" / "serve.py"), f"port={port}", "faces=false",
                               f"detector={detection_run['best_checkpoint']}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + STARTUP_S
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, f"serve.py exited: {server.communicate()[1][-3000:]}"
                assert time.monotonic() < deadline, "serve.py did not start listening"
                time.sleep(0.5)
        assert health.json() == {"status": "ok", "serving": ["detect"]}
        image = sorted((Path(detection_run["run_dir"]).parent / "data" / "val2017").glob("*.png"))[0]
        detected = httpx.post(f"{url}/detect", files={"image": (image.name, image.read_bytes(), "image/png")},
                              timeout=60)
        assert detected.status_code == 200 and detected.json()["file"] == image.name
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    # uvicorn shuts down, then raises the signal again for the parent to see: -SIGTERM is its clean exit
    assert server.returncode in (0, -signal.SIGTERM), err[-3000:]
    assert "Application shutdown complete" in err and "Traceback" not in err
    assert f"serving detect on {url}/" in out
