"""``tlhub serve`` in process (FastAPI's TestClient): answers, batching, ONNX, and every bad input a 4xx."""
from __future__ import annotations

import asyncio
import base64
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from tlhub.cli import cli  # noqa: E402
from tlhub.serve.app import create_app  # noqa: E402
from tlhub.serve.batcher import Batcher  # noqa: E402
from tlhub.serve.engine import load_engine  # noqa: E402
from tlhub.serve.settings import ServeSettings  # noqa: E402


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def images(n: int = 3) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [png(rng.integers(0, 255, (16, 16, 3)).astype(np.uint8)) for _ in range(n)]


def client(model, **options) -> TestClient:
    return TestClient(create_app(ServeSettings(str(model), threads=1, **options)))


def cli_predict(*args) -> list[dict]:
    res = CliRunner().invoke(cli, ["predict", *map(str, args), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-images")
    paths = []
    for i, data in enumerate(images()):
        (folder / f"im{i}.png").write_bytes(data)
        paths.append(folder / f"im{i}.png")
    return paths


def test_image_model_answers_what_tlhub_predict_prints(trained_image_model, image_files):
    expected = cli_predict(trained_image_model, *image_files)
    with client(trained_image_model, top=2) as c:
        meta = c.get("/metadata").json()
        assert meta["modality"] == "image" and meta["task"] == "single-label classification"
        assert meta["labels"] == list(expected[0]["probs"]) and meta["preprocessing"]["image_size"] == 16
        assert meta["backend"] == "pytorch" and meta["versions"]["torch"]
        files = [("file", (p.name, p.read_bytes(), "image/png")) for p in image_files]
        multipart = c.post("/predict", files=files)
        b64 = c.post("/predict?top=3", json={"inputs": [base64.b64encode(p.read_bytes()).decode()
                                                        for p in image_files]})
        assert multipart.status_code == 200 and b64.status_code == 200, (multipart.text, b64.text)
        for answer, top in ((multipart.json(), 2), (b64.json(), 3)):
            preds = answer["predictions"]
            assert len(preds) == len(expected)
            for got, want in zip(preds, expected):
                assert got["label"] == want["label"]
                assert got["prob"] == pytest.approx(want["prob"], abs=1e-5)
                assert got["probs"] == pytest.approx(want["probs"], abs=1e-5)
                ranked = sorted(want["probs"].items(), key=lambda kv: -kv[1])[:top]
                assert [t["label"] for t in got["top"]] == [c for c, _ in ranked]
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["inputs"] == 2 * len(expected)
        page = c.get("/")
        assert page.status_code == 200 and "<script" in page.text and "http" not in page.text.split("<script")[1]
        assert c.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]


def test_text_model_answers_what_the_predictor_says(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("tlhub_text")
    from tinyruns import train_tiny_text

    import tlhub
    run_dir = train_tiny_text(tmp_path)
    texts = ["great movie", "awful & dull <b>film</b>"]
    want = tlhub.load(run_dir).predict(texts)
    with client(run_dir) as c:
        assert c.get("/metadata").json()["modality"] == "text"
        r = c.post("/predict", json={"inputs": texts})
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        assert [g["label"] for g in got] == [w.label for w in want]
        assert [g["prob"] for g in got] == pytest.approx([w.prob for w in want], abs=1e-5)
        one = c.post("/predict", json={"inputs": "great movie"})  # a single string needs no list
        assert one.json()["predictions"][0]["label"] == want[0].label
        for body, status, words in (
                ({"inputs": [""]}, 422, "empty or blank"),
                ({"inputs": ["   "]}, 422, "empty or blank"),
                ({"inputs": ["x" * 10_001]}, 422, "over the limit of 10,000"),
                ({"inputs": [3]}, 422, "expected a string, got a number"),
                ({"inputs": ["ok"] * 65}, 422, "65 inputs in one request is over the limit of 64")):
            r = c.post("/predict", json=body)
            assert r.status_code == status and words in r.json()["error"], (body, r.text)
        r = c.post("/predict", files=[("file", ("a.txt", b"great movie", "text/plain"))])
        assert r.status_code == 415 and "a text model takes JSON" in r.json()["error"]
        assert c.post("/predict", json={"inputs": texts}).status_code == 200  # still serving


def bomb_png() -> bytes:
    """A 6000x6000 one-bit PNG: a few kB on the wire, 36 million pixels (108 MB as RGB) once decoded."""
    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, format="PNG")
    return buf.getvalue()


BAD_IMAGE_REQUESTS = {
    "malformed JSON": (dict(content=b'{"inputs": [', headers={"Content-Type": "application/json"}),
                       400, "malformed JSON body"),
    "wrong content type": (dict(content=b"inputs=x", headers={"Content-Type": "text/plain"}),
                           415, "unsupported content type 'text/plain'"),
    "no content type": (dict(content=b"x"), 415, "unsupported content type"),
    "not an object": (dict(json=["a"]), 422, 'expected a JSON object {"inputs": [...]}'),
    "inputs not a list": (dict(json={"inputs": {"a": 1}}), 422, '"inputs" must be a list'),
    "no inputs": (dict(json={"inputs": []}), 422, "no inputs in the request"),
    "too many inputs": (dict(json={"inputs": ["aGk="] * 65}), 422, "over the limit of 64"),
    "bad base64": (dict(json={"inputs": ["not base64!"]}), 422, "input 1: not valid base64"),
    "base64 of non-image bytes": (dict(json={"inputs": [base64.b64encode(b"hello world").decode()]}),
                                  422, "input 1: not an image file PIL can read"),
    "non-image upload": (dict(files=[("file", ("notes.png", b"\x89PNG but not really", "image/png"))]),
                         422, "file 'notes.png': not an image file PIL can read"),
    "truncated image": (dict(files=[("file", ("cut.png", images(1)[0][:60], "image/png"))]),
                        422, "file 'cut.png': cannot decode the image"),
    "empty upload": (dict(files=[("file", ("empty.png", b"", "image/png"))]), 422, "empty file"),
    "decompression bomb": (dict(files=[("file", ("bomb.png", bomb_png(), "image/png"))]),
                           422, "36,000,000 pixels is over the limit of 25,000,000"),
    "upload over the limit": (dict(files=[("file", ("big.png", b"\0" * (1024 * 1024 + 1), "image/png"))]),
                              413, "request body over the limit of 1 MB"),
    "malformed multipart": (dict(content=b"--x\r\nnonsense", headers={"Content-Type": "multipart/form-data; "
                                                                                     "boundary=x"}),
                            None, ""),
    "bad top": (dict(json={"inputs": ["aGk="]}, params={"top": 0}), 422, "query.top"),
}


def test_bad_image_requests_get_a_4xx_saying_what_was_wrong(trained_image_model):
    good = {"inputs": [base64.b64encode(images(1)[0]).decode()]}
    with client(trained_image_model, max_upload_mb=1.0) as c:
        for name, (kwargs, status, words) in BAD_IMAGE_REQUESTS.items():
            r = c.post("/predict", **kwargs)
            if status is None:  # how malformed multipart reads depends on the parser: any 4xx JSON error
                assert 400 <= r.status_code < 500 and r.json()["error"], (name, r.text)
            else:
                assert r.status_code == status, (name, r.status_code, r.text)
                assert words in r.json()["error"], (name, r.json())
            assert c.post("/predict", json=good).status_code == 200, name  # the server serves on
        assert c.get("/health").json()["batches"] == len(BAD_IMAGE_REQUESTS)


def test_the_upload_limit_is_checked_from_the_header_before_reading(trained_image_model):
    with client(trained_image_model, max_upload_mb=0.001) as c:
        r = c.post("/predict", content=b"{}" * 1000, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]


def test_onnx_backend_gives_the_pytorch_answers(trained_image_model, image_files, tmp_path):
    pytest.importorskip("onnxruntime")
    from tlhub.export.onnx import export_onnx
    onnx_file = export_onnx(trained_image_model, tmp_path / "onnx").path
    expected = cli_predict(trained_image_model, *image_files)
    settings = ServeSettings(str(onnx_file), onnx=True, threads=1)
    with TestClient(create_app(settings, load_engine(settings))) as c:
        assert c.get("/metadata").json()["backend"] == "onnxruntime"
        r = c.post("/predict", files=[("file", (p.name, p.read_bytes(), "image/png")) for p in image_files])
        got = r.json()["predictions"]
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        for g, e in zip(got, expected):
            assert g["probs"] == pytest.approx(e["probs"], abs=1e-4)


# ------------------------------------------------------------------ the batcher on its own

def run_batcher(max_batch: int, jobs: list[list[int]], cancel: set[int] = frozenset(), fail_on=None):
    """Submit every job before the batcher's loop first runs; (results per job, batch sizes seen)."""
    seen = []

    def model(items):
        seen.append(list(items))
        if fail_on is not None and fail_on in items:
            raise ValueError("model failed")
        return [x * 10 for x in items]

    async def main():
        b = Batcher(model, max_batch, max_wait_ms=50)
        await b.start()
        tasks = [asyncio.create_task(b.submit(j)) for j in jobs]
        await asyncio.sleep(0)  # every job queued
        for i in cancel:
            tasks[i].cancel()
        out = await asyncio.gather(*tasks, return_exceptions=True)
        stats = b.stats
        await b.stop()
        return out, stats

    out, stats = asyncio.run(main())
    return out, seen, stats


def test_batcher_gathers_concurrent_requests_up_to_the_maximum():
    jobs = [[i] for i in range(10)] + [[100, 101, 102]]
    out, seen, stats = run_batcher(4, jobs)
    assert out == [[x * 10 for x in j] for j in jobs]  # each request gets its own rows, in order
    assert [len(s) for s in seen] == [4, 4, 2, 3]  # the 3-input request did not fit the third batch
    assert stats.batches == 4 and stats.largest == 4 and stats.inputs == 13
    _, seen, _ = run_batcher(1, [[1], [2], [3]])
    assert seen == [[1], [2], [3]]  # max batch 1: no batching


def test_batcher_skips_requests_whose_client_left_and_serves_the_rest():
    out, seen, stats = run_batcher(8, [[1], [2], [3], [4]], cancel={1, 2})
    assert isinstance(out[1], asyncio.CancelledError) and isinstance(out[2], asyncio.CancelledError)
    assert out[0] == [10] and out[3] == [40] and seen == [[1, 4]] and stats.dropped == 2


def test_a_failing_batch_fails_its_requests_only():
    out, seen, _ = run_batcher(2, [[1], [2], [3], [4]], fail_on=2)
    assert all(isinstance(o, ValueError) for o in out[:2]) and out[2:] == [[30], [40]]


# ------------------------------------------------------------------ the command

def test_serve_command_mistakes_are_one_line_and_exit_2(tmp_path, trained_image_model, monkeypatch):
    import socket
    r = CliRunner().invoke(cli, ["serve", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such run directory" in r.output and "Traceback" not in r.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = CliRunner().invoke(cli, ["serve", str(trained_image_model), "--port", str(s.getsockname()[1])])
        assert r.exit_code == 2 and "cannot listen on 127.0.0.1" in r.output and "pick another --port" in r.output
    r = CliRunner().invoke(cli, ["serve", str(trained_image_model), "--max-batch-size", "0"])
    assert r.exit_code == 2 and "--max-batch-size" in r.output
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)  # as if the extra were not installed
    r = CliRunner().invoke(cli, ["serve", str(trained_image_model)])
    assert r.exit_code == 2 and "pip install 'tlhub[serve]'" in r.output


def test_a_failing_model_gets_a_json_500_and_the_server_serves_on(trained_image_model, monkeypatch):
    settings = ServeSettings(str(trained_image_model), threads=1)
    engine = load_engine(settings)
    real = engine.predict_proba
    calls = []

    def flaky(items, batch_size):
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("out of memory, say")
        return real(items, batch_size)

    monkeypatch.setattr(engine, "predict_proba", flaky)
    body = {"inputs": [base64.b64encode(images(1)[0]).decode()]}
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as c:
        r = c.post("/predict", json=body)
        assert r.status_code == 500 and r.json()["error"] == "internal error (RuntimeError: out of memory, say)"
        assert c.post("/predict", json=body).status_code == 200
