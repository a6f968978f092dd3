"""A real ``tlhub serve`` process on a free loopback port, for tests that need uvicorn itself."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STARTUP_S = 180  # importing torch and loading a model on a busy 2-core machine took ~25 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.load(r)

    def post_json(self, doc: dict, path: str = "/predict") -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def start_server(model: Path, log: Path, *args: str) -> Server:
    """``tlhub serve MODEL --port FREE ARGS``, returned once /health answers (or failing with its log)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = open(log, "w")  # noqa: SIM115 - the server writes here for its whole life
    proc = subprocess.Popen([sys.executable, "-m", "tlhub", "serve", str(model), "--port", str(port),
                             "--threads", "1", *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(proc, port, log)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tlhub serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            server.get("/health")
            return server
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"tlhub serve did not answer /health within {STARTUP_S} s:\n{log.read_text()}")
