"""The search service over loopback (uvicorn in a thread, a real HTTP client): /health, /embed and /search against
features computed independently, upload checks (4xx with a message), /index/add persisted, concurrent requests
sharing forward passes, the batching queue on its own, and the page driven by headless Chromium."""

import base64
import io
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from engine_support import make_dataset  # noqa: E402
from PIL import Image  # noqa: E402
from serving_support import tiny_model  # noqa: E402

from robustreid.engine import FeatureExtractor  # noqa: E402
from robustreid.eval.index import GalleryIndex  # noqa: E402
from robustreid.serve import (BatchQueue, Gallery, UploadLimits, build_index, images_from_folder,  # noqa: E402
                              open_embedder)
from robustreid.serve.app import create_app  # noqa: E402
from robustreid.serve.server import ServerThread  # noqa: E402

LIMITS = UploadLimits(max_images=4, max_bytes=30_000, max_pixels=120_000)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    ds = make_dataset(root / "data")
    model = tiny_model("bot_resnet")
    emb = open_embedder(model)
    index = build_index(emb, images_from_folder(root / "data" / "gallery"), progress=False)
    index.save(root / "g.index")
    return root, ds, model, emb, index


@pytest.fixture(scope="module")
def server(world):
    root, ds, model, emb, index = world
    app = create_app(Gallery(index, emb), limits=LIMITS, max_wait_ms=2)
    with ServerThread(app) as srv:
        yield srv, app


def files(*paths):
    return [("images", (os.path.basename(p), open(p, "rb").read(), "image/png")) for p in paths]


def png_bytes(w, h, colour=(10, 200, 30)):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return buf.getvalue()


def test_health(server, world):
    srv, _ = server
    h = httpx.get(srv.url + "/health").json()
    assert h["status"] == "ok" and h["index"] == {"rows": 12, "kind": "flat", "dim": world[4].dim}
    assert h["model"]["identity"] == world[3].identity and h["limits"]["max_images"] == 4


def test_embed_and_search_match_independent_features(server, world):
    srv, _ = server
    root, ds, model, emb, index = world
    fx = FeatureExtractor(model, normalize=True)
    q = [ds.query[0].path, ds.query[1].path]
    r = httpx.post(srv.url + "/embed", files=files(*q))
    assert r.status_code == 200
    got = np.array(r.json()["embeddings"])
    np.testing.assert_allclose(got, fx(q).numpy(), atol=1e-5)

    r = httpx.post(srv.url + "/search?k=5", files=files(*q))
    assert r.status_code == 200
    s = fx(q).numpy() @ fx(index.paths).numpy().T  # the index's rows, embedded by another code path
    for qi, res in enumerate(r.json()["results"]):
        order = np.argsort(-s[qi], kind="stable")[:5]
        assert [m["id"] for m in res["matches"]] == order.tolist()
        np.testing.assert_allclose([m["score"] for m in res["matches"]], s[qi, order], atol=1e-4)
        assert [m["rank"] for m in res["matches"]] == [1, 2, 3, 4, 5]
        thumb = res["matches"][0]["thumbnail"]
        assert thumb.startswith("data:image/jpeg;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(thumb.split(",", 1)[1])))
        assert im.format == "JPEG" and im.height == 128
    r = httpx.post(srv.url + "/search?k=3&thumbnails=false", files=files(q[0]))
    assert "thumbnail" not in r.json()["results"][0]["matches"][0]


@pytest.mark.parametrize("case, status, message", [
    ("none", 400, "no image uploaded"),
    ("text", 415, "not an image"),
    ("gif", 415, "GIF images are not accepted"),
    ("many", 413, "5 images in one request; at most 4"),
    ("bytes", 413, "at most 30,000 bytes"),
    ("pixels", 413, "at most 120,000"),
    ("truncated", 400, "corrupt or truncated"),
    ("tiny", 422, "too small"),
    ("k", 422, "k: expected 1..100"),
    ("not-multipart", 415, "multipart/form-data"),
])
def test_upload_checks(server, world, case, status, message):
    srv, _ = server
    good = open(world[1].query[0].path, "rb").read()
    url, kw = srv.url + "/search", {}
    if case == "none":
        kw = {"data": {"k": "3"}, "files": [("other", ("a.txt", b"x", "text/plain"))]}
    elif case == "text":
        kw = {"files": [("images", ("notes.txt", b"hello", "text/plain"))]}
    elif case == "gif":
        buf = io.BytesIO()
        Image.new("RGB", (20, 40)).save(buf, "GIF")
        kw = {"files": [("images", ("a.gif", buf.getvalue(), "image/gif"))]}
    elif case == "many":
        kw = {"files": [("images", (f"{i}.png", good, "image/png")) for i in range(5)]}
    elif case == "bytes":
        noise = np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noise).save(buf, "PNG")
        kw = {"files": [("images", ("big.png", buf.getvalue(), "image/png"))]}
    elif case == "pixels":
        kw = {"files": [("images", ("wide.png", png_bytes(500, 300), "image/png"))]}
    elif case == "truncated":
        kw = {"files": [("images", ("cut.png", good[: len(good) // 2], "image/png"))]}
    elif case == "tiny":
        kw = {"files": [("images", ("dot.png", png_bytes(4, 4), "image/png"))]}
    elif case == "k":
        url, kw = srv.url + "/search?k=0", {"files": [("images", ("q.png", good, "image/png"))]}
    elif case == "not-multipart":
        kw = {"content": good, "headers": {"content-type": "image/png"}}
    r = httpx.post(url, **kw)
    assert r.status_code == status and message in r.json()["detail"], r.text
    if case in ("bytes", "pixels", "truncated", "text"):
        assert r.json()["detail"].split(":")[0] in ("big.png", "wide.png", "cut.png", "notes.txt")  # names the file


def test_index_add_is_searchable_and_persisted(world, tmp_path):
    root, ds, model, emb, index = world
    shutil.copy(root / "g.index", tmp_path / "g.index")
    shutil.copy(root / "g.index.meta.safetensors", tmp_path / "g.index.meta.safetensors")
    gal = Gallery(GalleryIndex.load(tmp_path / "g.index"), emb, tmp_path / "g.index")
    new = ds.query[2].path
    with ServerThread(create_app(gal, limits=LIMITS)) as srv:
        r = httpx.post(srv.url + "/index/add", files=files(new), data={"pids": "77", "camids": "3"})
        assert r.status_code == 200 and r.json() == {"added": 1, "ids": [12], "rows": 13}
        top = httpx.post(srv.url + "/search?k=1", files=files(new)).json()["results"][0]["matches"][0]
        assert top["id"] == 12 and top["pid"] == 77 and top["camid"] == 3 and top["score"] > 0.9999
        assert top["thumbnail"]  # the crop was stored next to the index
        r = httpx.post(srv.url + "/index/add", files=files(new, new), data={"pids": "1"})
        assert r.status_code == 400 and "pids: 1 values for 2 images" in r.json()["detail"]
    back = GalleryIndex.load(tmp_path / "g.index")
    assert len(back) == 13 and back.pids[12] == 77 and os.path.dirname(back.paths[12]).endswith("g.index.added")
    assert open(back.paths[12], "rb").read() == open(new, "rb").read()


def test_concurrent_requests_share_forward_passes(world):
    root, ds, model, emb, index = world
    gate, calls = threading.Event(), []
    inner = emb.embed

    class Gated:  # the first forward waits until the other 7 requests are queued behind it
        def __getattr__(self, name):
            return getattr(emb, name)

        def embed(self, x):
            calls.append(x.shape[0])
            if len(calls) == 1:
                gate.wait(20)
            return inner(x)

    gal = Gallery(index, emb)
    gal.embedder = Gated()
    app = create_app(gal, limits=LIMITS, max_batch=32, max_wait_ms=1)
    q = ds.query[0].path
    with ServerThread(app) as srv, ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(httpx.post, srv.url + "/embed", files=files(q), timeout=60)]
        while not calls:
            time.sleep(0.01)
        futs += [pool.submit(httpx.post, srv.url + "/embed", files=files(q), timeout=60) for _ in range(7)]
        t0 = time.monotonic()
        while app.state.queue._queue.qsize() < 7 and time.monotonic() - t0 < 20:
            time.sleep(0.01)
        gate.set()
        rs = [f.result() for f in futs]
    assert all(r.status_code == 200 for r in rs)
    e = np.array([r.json()["embeddings"][0] for r in rs])
    np.testing.assert_allclose(e, np.repeat(e[:1], 8, axis=0), atol=1e-6)
    assert calls == [1, 7]  # 8 requests, 2 forward passes


def test_batch_queue_routes_results_and_errors():
    seen = []

    def double(items):
        seen.append(list(items))
        if "boom" in items:
            raise RuntimeError("bad item")
        return [2 * i for i in items]

    q = BatchQueue(double, max_batch=4, max_wait_ms=50)
    futs = [q.submit([i, i + 100]) for i in range(3)]  # 6 items, max 4 per batch: 2 + 2, then 2
    assert [f.result(10) for f in futs] == [[0, 200], [2, 202], [4, 204]]
    assert sorted(len(b) for b in seen) == [2, 4] and q.stats()["requests"] == 3
    big = q.submit(list(range(9)))  # larger than max_batch: runs alone
    assert big.result(10) == [2 * i for i in range(9)]
    bad = q.submit(["boom"])
    with pytest.raises(RuntimeError, match="bad item"):
        bad.result(10)
    assert q([5]) == [10]  # the worker survived the failure
    q.close()
    with pytest.raises(RuntimeError, match="closed"):
        q.submit([1]).result(1)


def _chrome():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(driver)):
        pytest.skip("headless Chromium / chromedriver not installed")
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        o.add_argument(a)
    o.binary_location = chromium
    return webdriver.Chrome(options=o, service=Service(driver))


def test_page_in_headless_chromium(server, world, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    srv, _ = server
    ds = world[1]
    browser = _chrome()
    try:
        browser.get(srv.url + "/")
        WebDriverWait(browser, 20).until(lambda b: "12 crops" in b.find_element(By.ID, "gallery").text)
        browser.find_element(By.ID, "file").send_keys(ds.query[0].path)
        WebDriverWait(browser, 30).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "figure.match")) == 10)
        figs = browser.find_elements(By.CSS_SELECTOR, "figure.match")
        assert figs[0].text.startswith("#1") and "matches for" in browser.find_element(By.ID, "status").text
        assert all(f.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("data:image/jpeg") for f in figs)
        assert browser.execute_script(
            "return Array.from(document.querySelectorAll('figure.match img')).every(i => i.naturalHeight > 0)")
        (tmp_path / "notes.txt").write_text("not an image")
        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.txt"))
        WebDriverWait(browser, 30).until(lambda b: "error 415" in b.find_element(By.ID, "status").text)
    finally:
        browser.quit()
    torch.set_num_threads(1)
