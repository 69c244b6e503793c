"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromedriver, against the real app under uvicorn on 127.0.0.1 (face-api's detector and pipeline, an index
of five demo photos' faces, the tiny geolocation checkpoint). A demo photo is uploaded through the file
input, and what the page draws is held to what the endpoints answer for that photo. Skipped, saying
what is missing, where chromium or chromedriver is not installed (.ci/run installs both).

Screenshots: each test's tmp_path, and ``$MNET_VISION_SCREENSHOTS`` when it names a folder.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from mnet_vision.faces.gallery import index_photos
from mnet_vision.inference.geolocate import Geolocator
from mnet_vision.serving.app import create_app
from mnet_vision.serving.config import ServiceConfig
from mnet_vision.serving.models import ServedModels

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Without the background-networking flags chromium keeps calling home, and this machine has no network.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync")
WINDOW = (1400, 1000)
WAIT_S = 30  # the longest any wait for the page may take (a bound, not a speed figure)
QUERY = "sample3"  # the uploaded photo; the other five demo photos are the index
INDEXED = ("sample1", "sample2", "sample4", "sample5", "sample6")
TOKEN = "page-test-token"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402 - after the skip above
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 at a free port, in a background thread; yields its base URL and
    shuts it down (lifespan included: the batchers drained) at the end."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # the server takes this socket: no window for another process to take the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()


@pytest.fixture(scope="module")
def service(faceapi_models, geo_run, demo_photo, tmp_path_factory) -> Iterator[str]:
    """The base URL of the real app: face-api's detector on /detect, its pipeline on /faces/* over an index
    of the five other demo photos' faces (thumbnails cut from them), the geolocation checkpoint on
    /geolocate; writes need the token."""
    index = tmp_path_factory.mktemp("page_index") / "demo.faiss"
    index_photos([demo_photo(name) for name in INDEXED], index, faceapi_models.faces, progress=False)
    checkpoint = str(geo_run["best_checkpoint"])
    models = ServedModels(detector=faceapi_models.detector, faces=faceapi_models.faces,
                          geolocator=Geolocator(checkpoint), geolocator_source=checkpoint)
    with served(create_app(ServiceConfig(index=str(index), token=TOKEN), models)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(f"no browser to test the page in: {' and '.join(missing)} missing (Debian: apt-get install "
                    f"chromium chromium-driver, as .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()


def upload_file(driver, url: str, path: Path) -> None:
    """Open the page, wait for it to know the models, choose ``path`` in its file input, wait until done."""
    driver.get(url + "/")
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(lambda d: d.find_element(By.ID, "models").get_attribute("data-state") == "ready")
    driver.find_element(By.ID, "file").send_keys(str(path))
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "done")


def endpoint(url: str, path: str, photo: Path) -> dict:
    """What an endpoint answers for ``photo`` (the reference the page is held to)."""
    response = httpx.post(url + path, files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=WAIT_S)
    assert response.status_code == 200, response.text
    return response.json()


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    """The whole page (the window stretched to its height) as ``tmp_path/name``, copied to
    ``$MNET_VISION_SCREENSHOTS`` when set."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW[0], max(WINDOW[1], height + 140))  # + the window's own frame
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), "chromium took no screenshot"
    driver.set_window_size(*WINDOW)
    folder = os.environ.get("MNET_VISION_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / name)
    return path


def centre(driver, selector: str) -> tuple[float, float, float, float, float, float]:
    """``(x, y, left, top, width, height)`` of the first element matching ``selector`` on the screen."""
    return tuple(driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return [r.left + r.width / 2, r.top + r.height / 2, r.left, r.top, r.width, r.height];", selector))


def test_an_uploaded_photo_shows_its_boxes_face_matches_and_map(service, browser, demo_photo, tmp_path):
    photo = demo_photo(QUERY)
    detected = endpoint(service, "/detect", photo)
    searched = endpoint(service, "/faces/search", photo)
    located = endpoint(service, "/geolocate", photo)
    assert detected["detections"] and searched["faces"] and any(f["matches"] for f in searched["faces"])

    upload_file(browser, service, photo)
    assert browser.find_elements(By.CSS_SELECTOR, "#errors .error") == []
    boxes = browser.find_elements(By.CSS_SELECTOR, "#detections .box")
    assert [b.get_attribute("data-label") for b in boxes] == [d["label"] for d in detected["detections"]]
    # the first box where the photo's pixels put it, on the photo as the page scaled it
    x0, y0, x1, y1 = detected["detections"][0]["box_xyxy"]
    _, _, left, top, width, _ = centre(browser, "#photo")
    _, _, box_left, box_top, box_width, _ = centre(browser, "#detections .box")
    scale = width / detected["width"]
    assert box_left == pytest.approx(left + x0 * scale, abs=2) and box_top == pytest.approx(top + y0 * scale, abs=2)
    assert box_width == pytest.approx((x1 - x0) * scale, abs=3)

    rows = browser.find_elements(By.CSS_SELECTOR, "#faces .face")
    assert len(rows) == len(searched["faces"])
    for row, face in zip(rows, searched["faces"]):
        shown = [m.get_attribute("data-id") for m in row.find_elements(By.CSS_SELECTOR, ".match")]
        assert shown == [str(m["id"]) for m in face["matches"]]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#faces .match")) == sum(len(f["matches"])
                                                                              for f in searched["faces"])
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(  # every match's thumbnail arrived and decoded
        "return [...document.querySelectorAll('#faces .match img')].every(i => i.complete && i.naturalWidth == 96)"))
    drawn = browser.execute_script(  # each query face was cut from the photo onto its canvas (not left blank)
        "return [...document.querySelectorAll('#faces .query canvas')].map(c => {"
        "  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "  let lo = 255, hi = 0;"
        "  for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }"
        "  return hi - lo; })")
    assert len(drawn) == len(searched["faces"]) and min(drawn) > 40

    cells = browser.find_elements(By.CSS_SELECTOR, "#map .cell")
    assert [c.get_attribute("data-token") for c in cells] == [c["token"] for c in located["cells"]]
    x, y, left, top, width, height = centre(browser, "#world")
    star_x, star_y, *_ = centre(browser, "#map .predicted")
    assert star_x == pytest.approx(left + (located["lon"] + 180) / 360 * width, abs=2)
    assert star_y == pytest.approx(top + (90 - located["lat"]) / 180 * height, abs=2)
    assert browser.execute_script("const w = document.getElementById('world'); return w.complete && w.naturalWidth")
    assert screenshot(browser, tmp_path, "serving_page.png").stat().st_size > 10_000


def test_the_form_adds_a_face_with_the_token(service, browser, demo_photo):
    before = httpx.get(service + "/models").json()["index"]["size"]
    upload_file(browser, service, demo_photo(QUERY))
    browser.find_element(By.ID, "add-identity").send_keys("visitor")
    browser.find_element(By.CSS_SELECTOR, "#add-face button").click()  # no token yet: the service's 401 shown
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#errors .error"))
    assert "401" in browser.find_element(By.CSS_SELECTOR, "#errors .error").text
    browser.find_element(By.ID, "add-token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#add-face button").click()
    result = browser.find_element(By.ID, "add-result")
    WebDriverWait(browser, WAIT_S).until(lambda d: result.get_attribute("data-state") in ("done", "error"))
    assert result.get_attribute("data-state") == "done", browser.find_element(By.ID, "errors").text
    assert "visitor" in result.text
    assert httpx.get(service + "/models").json()["index"]["size"] == before + 1


def test_a_dropped_file_that_is_no_image_shows_the_service_refusal(service, browser):
    browser.get(service + "/")
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: d.find_element(By.ID, "models").get_attribute("data-state") == "ready")
    browser.execute_script(  # what a drop from the desktop delivers: a drop event carrying the file
        "const files = new DataTransfer();"
        "files.items.add(new File(['not a photo\\n'], 'notes.txt', {type: 'text/plain'}));"
        "document.getElementById('drop').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: files, bubbles: true, cancelable: true}));")
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "done")
    errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#errors .error")]
    for path in ("/detect", "/faces/search", "/geolocate"):
        assert any(e.startswith(f"{path}: 415") and "notes.txt" in e for e in errors), (path, errors)
    assert browser.find_element(By.ID, "detections").get_attribute("hidden") is not None  # no photo to draw on
