"""The FastAPI app: ``/predict``, ``/health``, ``/metadata``, the page at ``/`` and FastAPI's ``/docs``.

Every client mistake is a 4xx with ``{"error": "..."}`` saying what was wrong (``inputs.BadRequest``);
the request bodies are read here under the size limit, then decoded by the model's modality decoder
off the event loop, then batched (``batcher``) with other requests into one forward pass.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib import resources
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from tlhub import __version__
from tlhub.errors import UserError
from tlhub.serve.batcher import Batcher
from tlhub.serve.engine import Engine, load_engine
from tlhub.serve.inputs import BadRequest, decoder_for, from_form, from_json_body
from tlhub.serve.settings import ServeSettings
from tlhub.use.load import predictions

log = logging.getLogger("tlhub.serve")

PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["inputs"],
            "properties": {"inputs": {"type": "array", "items": {"type": "string"}, "description":
                           "texts for a text model; base64-encoded image files for an image model"}}},
            "example": {"inputs": ["a sentence to label"]}},
        "multipart/form-data": {"schema": {
            "type": "object", "properties": {"file": {"type": "array", "items": {"type": "string",
                                                                                 "format": "binary"}}}}},
    },
}


def create_app(settings: ServeSettings, engine: Engine | None = None) -> FastAPI:
    """The app for ``settings``; ``engine`` (a loaded model) is loaded at startup when not given."""
    state: dict[str, Any] = {"in_flight": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        eng = engine or await asyncio.to_thread(load_engine, settings)
        state["engine"] = eng
        state["decoder"] = decoder_for(eng.predictor.modality_impl, settings)
        state["metadata"] = eng.metadata(settings)
        batcher = Batcher(lambda items: eng.predict_proba(items, settings.max_batch_size),
                          settings.max_batch_size, settings.max_wait_ms)
        await batcher.start()
        state["batcher"] = batcher
        try:
            yield
        finally:  # uvicorn has drained the in-flight requests by now
            await batcher.stop()

    app = FastAPI(title="tlhub serve", version=settings_version(), lifespan=lifespan,
                  description="Predictions from a model trained with tlhub. POST /predict; the page at / tries it.")

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(UserError)
    async def refused_by_the_predictor(request: Request, exc: UserError):  # what tlhub predict would refuse
        return JSONResponse({"error": "; ".join(exc.errors) or str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception):  # a bug of ours: logged, answered in JSON
        log.exception("predict failed")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}: {exc})"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        msgs = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())), e.get("msg")) for e in exc.errors()]
        return JSONResponse({"error": "; ".join(msgs)}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(resources.files("tlhub.serve").joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/health")
    async def health():
        """200 once the model is loaded, with the requests in flight and the batching counters."""
        stats = state["batcher"].stats
        return {"status": "ok", "in_flight": state["in_flight"], "batches": stats.batches, "inputs": stats.inputs, "largest_batch": stats.largest,
                "dropped_requests": stats.dropped, "model_seconds": round(stats.model_seconds, 3)}

    @app.get("/metadata")
    async def metadata():
        """Task, modality, labels, preprocessing, backend, limits and versions."""
        return state["metadata"]

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict(request: Request, top: int | None = Query(None, ge=1, description="classes ranked per input")):
        """Top-k labels with probabilities (and every class's probability) per input, in order.

        JSON `{"inputs": [...]}`: texts, or base64 image files. Multipart: one image per uploaded file.
        """
        state["in_flight"] += 1
        try:
            items = await read_inputs(request, state["decoder"], settings)
            rows = await state["batcher"].submit(items)
        except ClientDisconnect:  # the client left mid-upload: nobody to answer
            return Response(status_code=499)
        finally:
            state["in_flight"] -= 1
        return {"model": state["metadata"]["name"],
                "predictions": ranked(state["engine"].classes, rows, top or settings.top,
                                      getattr(state["engine"].predictor, "task", None))}

    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to pass ``limit`` bytes (header or stream)."""
    declared = request.headers.get("content-length")
    too_big = f"request body over the limit of {limit / 1024 / 1024:g} MB (--max-upload-mb)"
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, f"bad Content-Length header {declared!r}")
        if int(declared) > limit:
            raise BadRequest(413, too_big)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise BadRequest(413, too_big)
    return bytes(buf)


async def read_inputs(request: Request, decoder, settings: ServeSettings) -> list:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "multipart/form-data"):
        raise BadRequest(415, f"unsupported content type {ctype or '(none)'!r}: send application/json "
                              f'{{"inputs": [...]}} or multipart/form-data with image files')
    body = await read_body(request, settings.max_upload_bytes)
    if ctype == "application/json":
        return await asyncio.to_thread(from_json_body, body, decoder, settings)

    async def once():
        yield body
    try:
        form = await MultiPartParser(request.headers, once(), max_files=settings.max_inputs + 1,
                                     max_fields=settings.max_inputs + 1,
                                     max_part_size=settings.max_upload_bytes).parse()
    except MultiPartException as exc:
        raise BadRequest(400, f"malformed multipart body ({exc.message})") from None
    try:
        return await asyncio.to_thread(from_form, form, decoder, settings)
    finally:
        await form.close()


def ranked(classes: list[str], rows, top: int, task=None) -> list[dict]:
    """What ``tlhub predict`` prints: the label, its probability, the ``top`` best, and every class's probability
    (multi-label: also the labels over their thresholds; regression: the values)."""
    out = []
    for p in predictions(classes, rows, task):
        best = sorted(p.probs.items(), key=lambda kv: -kv[1])[:top]
        out.append({**p.to_dict(), **({"top": [{"label": c, "prob": v} for c, v in best]} if p.probs else {})})
    return out


def settings_version() -> str:
    return __version__


def app_from_env() -> FastAPI:
    """The factory each uvicorn worker calls (``tlhub serve`` puts the settings in the environment)."""
    return create_app(ServeSettings.from_env())
