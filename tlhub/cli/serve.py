"""``tlhub serve``: a trained model behind an HTTP API with batching, and a page to try it."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
from importlib.util import find_spec
from pathlib import Path

import click

from tlhub.cli.base import user_errors
from tlhub.errors import UserError


@click.command()
@click.argument("model", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the model to the network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--onnx", is_flag=True, help="Run the model with ONNX Runtime (exported to a temporary folder "
                                           "unless RUN/onnx/model.onnx exists; a .onnx MODEL implies it).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes, each with its own copy of the model.")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help="Inference threads per worker [default: $OMP_NUM_THREADS, else CPU cores / workers].")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(1, 4096),
              help="Most inputs gathered from concurrent requests into one forward pass (1: no batching).")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0, 10_000),
              help="How long a request waits for others to share its batch.")
@click.option("--max-upload-mb", default=10.0, show_default=True, type=click.FloatRange(0.001, 4096),
              help="Largest request body; a bigger one gets 413.")
@click.option("--max-inputs", default=64, show_default=True, type=click.IntRange(1, 100_000),
              help="Most inputs in one request.")
@click.option("--max-text-chars", default=10_000, show_default=True, type=click.IntRange(1),
              help="Longest text input, in characters.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1),
              help="Classes ranked per input unless the request asks ?top=K.")
@user_errors
def serve(model, host, port, onnx, workers, threads, max_batch_size, max_wait_ms, max_upload_mb, max_inputs,
          max_text_chars, top):
    """Serve MODEL (a run directory, its model/ folder, or an exported model.onnx or its folder) over HTTP.

    POST /predict takes JSON {"inputs": [...]} (texts, or base64 image files) or a multipart upload of
    image files, and answers each input's label, probability and top classes. GET /health, GET
    /metadata, the API docs at /docs and a page to try the model at /. Ctrl-C or SIGTERM finishes the
    requests in flight, then exits.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
        if not (find_spec("python_multipart") or find_spec("multipart")):  # file uploads; renamed in 0.0.13
            raise ImportError(name="python-multipart")
    except ImportError as exc:
        raise UserError(f"tlhub serve needs FastAPI, uvicorn and python-multipart ({exc.name} is missing): "
                        "pip install 'tlhub[serve]'") from None
    # local: tlhub.serve.app imports FastAPI (optional: tlhub[serve]); all load when the command runs (fast --help)
    from tlhub.serve.app import create_app
    from tlhub.serve.engine import load_engine
    from tlhub.serve.settings import ServeSettings

    check_port_free(host, port)
    threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // workers)
    with contextlib.ExitStack() as stack:
        path, use_onnx, name = resolve_model(model, onnx, stack)
        settings = ServeSettings(str(path), use_onnx, host, port, workers, threads, max_batch_size, max_wait_ms,
                                 max_upload_mb, max_inputs, max_text_chars, top=top, name=name)
        engine = load_engine(settings)  # a bad model fails here, with one message, before the server starts
        click.echo(f"serving {engine.name} ({engine.modality}, {len(engine.classes)} classes, {engine.backend}, "
                   f"{threads} thread(s) x {workers} worker(s)) at http://{host}:{port}/  (API docs at /docs)",
                   err=True)
        if workers == 1:
            run_server(uvicorn.Server(uvicorn.Config(create_app(settings, engine), host=host, port=port,
                                                     log_level="info", timeout_graceful_shutdown=30)))
        else:  # each worker process loads its own model from the settings in its environment
            del engine
            settings.to_env()
            uvicorn.run("tlhub.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level="info", timeout_graceful_shutdown=30)


def run_server(server) -> None:
    """Run uvicorn; SIGTERM or Ctrl-C drains the requests in flight, then ``tlhub serve`` exits 0.

    uvicorn restores the handlers it found and raises the signal again after its graceful shutdown
    (so a default handler would kill the process: status 143); the handler set here ends it cleanly,
    and also stops a server whose signal came before uvicorn took the signals over.
    """
    def stop(sig, frame):
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    server.run()
    click.echo("tlhub serve: stopped", err=True)


def resolve_model(model: str, onnx: bool, stack: contextlib.ExitStack) -> tuple[Path, bool, str]:
    """(the file or folder to load, whether ONNX Runtime runs it, the model's name)."""
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.use.load import find_model_dir
    from tlhub.use.onnx import ONNX_FILE, find_onnx
    from tlhub.serve.engine import model_name

    onnx_file = find_onnx(model)
    if onnx_file is not None:
        return onnx_file, True, onnx_file.resolve().parent.name
    model_dir = find_model_dir(model)
    name = model_name(model_dir.resolve())
    if not onnx:
        return model_dir, False, name
    exported = model_dir.parent / "onnx" / ONNX_FILE
    if model_dir.name == "model" and exported.is_file():
        return exported, True, name
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.export.onnx import export_onnx
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlhub-serve-onnx-")))
    click.echo(f"exporting {model_dir} to ONNX in {folder} (tlhub export {model} writes it for reuse)", err=True)
    return export_onnx(model_dir, folder).path, True, name


def check_port_free(host: str, port: int) -> None:
    """A port in use or an address this host lacks is the user's to fix: say so before loading anything."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
