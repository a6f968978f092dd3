"""``tlhub serve`` as a real uvicorn process on a free loopback port: clients that leave, the page in
headless Chromium, and SIGTERM draining the requests in flight."""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner
from serving import start_server

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import REPO  # noqa: E402

from tlhub.cli import cli  # noqa: E402
from tlhub.testing.browser import find_chromium  # noqa: E402

BROWSER = find_chromium()
DOCS_URL = "http://127.0.0.1:8000"  # what the docs' examples call; the tests swap in the test server's


def doc_blocks(lang: str) -> list[str]:
    """The ``lang`` code blocks of docs/serving.md and of the README's serving section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    texts = [(REPO / "docs" / "serving.md").read_text(encoding="utf-8"),
             readme.split("### Serving over HTTP", 1)[1].split("\n### ", 1)[0]]
    return [b for t in texts for b in re.findall(rf"```{lang}\n(.*?)```", t, re.S)]


def doc_curls(image: bool) -> list[str]:
    lines = [ln for b in doc_blocks("bash") for ln in b.splitlines() if ln.startswith("curl ")]
    return [ln for ln in lines if ("file=@" in ln) == image]


def run_curl(line: str, url: str, cwd) -> dict:
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    assert DOCS_URL in line, line
    out = subprocess.run(line.replace(DOCS_URL, url), shell=True, cwd=cwd, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, (line, out.stderr)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def image_png(tmp_path_factory):
    import numpy as np
    from PIL import Image
    path = tmp_path_factory.mktemp("serve-page") / "digit.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (16, 16, 3)).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def server(trained_image_model, tmp_path_factory):
    # a request waits up to 300 ms in the batcher for company: time for its client to leave meanwhile
    s = start_server(trained_image_model, tmp_path_factory.mktemp("serve-log") / "server.log", "--max-wait-ms", "300")
    yield s
    assert s.stop() == 0, s.log.read_text()


def expected(model, path) -> dict:
    res = CliRunner().invoke(cli, ["predict", str(model), str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)[0]


def raw(port: int, data: bytes, read: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(data)
        return s.recv(65536) if read else b""


def test_clients_that_leave_mid_request_do_not_wedge_the_server(server, trained_image_model, image_png):
    import base64
    body = json.dumps({"inputs": [base64.b64encode(image_png.read_bytes()).decode()]}).encode()
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {{}}\r\n\r\n"
    raw(server.port, head.format(100_000).encode() + body[:20])  # gone mid-upload
    for _ in range(3):  # gone while the request waits in the batcher
        raw(server.port, head.format(len(body)).encode() + body)
    results = []
    threads = [threading.Thread(target=lambda: results.append(server.post_json(json.loads(body))))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    want = expected(trained_image_model, image_png)
    assert len(results) == 8 and all(status == 200 for status, _ in results), results
    assert all(doc["predictions"][0]["label"] == want["label"] for _, doc in results)
    reply = raw(server.port, head.format(len(body)).encode() + body, read=True)
    assert reply.startswith(b"HTTP/1.1 200")
    health = server.get("/health")
    assert health["status"] == "ok" and health["in_flight"] == 0


def test_docs_examples_run_against_a_server(server, trained_image_model, image_png, tmp_path, monkeypatch, capsys):
    """The curl lines (image ones here; text ones in the SIGTERM test) and the Python example of the docs."""
    want = expected(trained_image_model, image_png)
    shutil.copy(image_png, tmp_path / "digit.png")
    curls, pythons = doc_curls(image=True), [b for b in doc_blocks("python") if DOCS_URL in b]
    assert len(curls) >= 2 and len(pythons) == 1  # docs/serving.md and the README
    for line in curls:
        assert run_curl(line, server.url, tmp_path)["predictions"][0]["label"] == want["label"]
    monkeypatch.chdir(tmp_path)
    exec(compile(pythons[0].replace(DOCS_URL, server.url), "docs/serving.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith(want["label"] + " [{'label': " + repr(want["label"]))


@pytest.mark.skipif(isinstance(BROWSER, str), reason=f"headless browser unavailable: {BROWSER}")
def test_page_predicts_an_uploaded_image_like_tlhub_predict(server, trained_image_model, image_png):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    want = expected(trained_image_model, image_png)
    driver = chromium()
    try:
        driver.get(server.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(EC.visibility_of_element_located((By.ID, "image-input")))
        assert driver.find_element(By.ID, "name").text == trained_image_model.name
        labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#labels span")]
        assert labels == list(want["probs"])
        driver.find_element(By.ID, "file").send_keys(str(image_png))
        top = wait.until(EC.visibility_of_element_located((By.ID, "top-label")))
        assert top.text == want["label"]
        rows = driver.find_elements(By.CSS_SELECTOR, "#results .row")
        assert len(rows) == len(want["probs"])  # ?top=10 and four classes: one bar each
        first = rows[0].text.split("\n")
        assert first[0] == want["label"] and float(first[-1]) == pytest.approx(want["prob"], abs=1e-4)
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("tlhub_text")
    from tinyruns import train_tiny_text
    return train_tiny_text(tmp_path_factory.mktemp("serve-text"))


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER.binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions",
                "--window-size=1000,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(BROWSER.driver))
    driver.set_page_load_timeout(60)
    return driver


@pytest.mark.skipif(isinstance(BROWSER, str), reason=f"headless browser unavailable: {BROWSER}")
def test_page_predicts_a_typed_sentence_like_the_predictor(text_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    import tlhub
    sentence = "great movie <b>really</b>"
    want = tlhub.load(text_run).predict([sentence])[0]
    s = start_server(text_run, tmp_path / "server.log")
    driver = chromium()
    try:
        driver.get(s.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(EC.visibility_of_element_located((By.ID, "text-input")))
        labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#labels span")]
        assert labels == list(want.probs) and driver.find_element(By.ID, "image-input").is_displayed() is False
        driver.find_element(By.ID, "text").send_keys(sentence)
        driver.find_element(By.ID, "go").click()
        top = wait.until(EC.visibility_of_element_located((By.ID, "top-label")))
        assert top.text == want.label  # the label's markup shows as text
        assert [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"] == []
    finally:
        driver.quit()
        assert s.stop() == 0


def test_sigterm_drains_in_flight_requests_and_exits_0(text_run, tmp_path):
    """A text model built by a tiny run, served by `tlhub serve`; SIGTERM while a request waits in the batcher."""
    import tlhub
    run_dir = text_run
    want = tlhub.load(run_dir).predict(["great movie"])[0]
    s = start_server(run_dir, tmp_path / "server.log", "--max-wait-ms", "3000")
    try:
        status, doc = s.post_json({"inputs": ["great movie"]})
        assert status == 200 and doc["predictions"][0]["label"] == want.label
        texts = doc_curls(image=False)  # the docs' text example, against a text model
        assert texts and all(len(run_curl(line, s.url, tmp_path)["predictions"]) == 1 for line in texts)
        result = []
        t = threading.Thread(target=lambda: result.append(s.post_json({"inputs": ["great movie"]})))
        t.start()
        deadline = time.monotonic() + 60
        while s.get("/health")["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.stop() == 0, s.log.read_text()
        t.join(60)
        assert result and result[0][0] == 200 and result[0][1]["predictions"][0]["label"] == want.label
        assert "tlhub serve: stopped" in s.log.read_text()
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def test_two_workers_answer_and_stop_on_sigterm(trained_image_model, image_png, tmp_path):
    import base64
    s = start_server(trained_image_model, tmp_path / "server.log", "--workers", "2")
    try:
        want = expected(trained_image_model, image_png)
        body = {"inputs": [base64.b64encode(image_png.read_bytes()).decode()]}
        answers = [s.post_json(body) for _ in range(4)]
        assert all(status == 200 and doc["predictions"][0]["label"] == want["label"] for status, doc in answers)
        assert s.stop() == 0, s.log.read_text()
        assert s.log.read_text().count("Application shutdown complete") == 2  # both workers shut down cleanly
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
