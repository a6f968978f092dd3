"""What ``tlhub serve`` was asked for: one frozen dataclass, passed to each uvicorn worker as JSON."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

ENV = "TLHUB_SERVE_SETTINGS"  # how a worker process started by uvicorn learns its settings


@dataclass(frozen=True)
class ServeSettings:
    model: str  # a run directory, its model/ folder, or an exported model.onnx (resolved by the CLI)
    onnx: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 1  # torch / ONNX Runtime intra-op threads per worker
    max_batch_size: int = 32  # inputs per forward pass
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_upload_mb: float = 10.0  # request body limit
    max_inputs: int = 64  # inputs per request
    max_text_chars: int = 10_000  # per text input
    max_image_pixels: int = 25_000_000  # width x height of one decoded image (decompression bombs)
    top: int = 5  # default number of classes ranked per input
    name: str = ""  # the model's name shown on the page and in /metadata

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_env(self) -> None:
        os.environ[ENV] = json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServeSettings":
        raw = os.environ.get(ENV)
        if not raw:
            raise RuntimeError(f"{ENV} is not set: start the server with `tlhub serve`")
        return cls(**json.loads(raw))
