"""The web page's routes (no browser: tests/serving/test_browser.py drives one): the page and the
files it names are served, nothing outside the static folder is, and the world backdrop is an
equirectangular map with land where the cities are."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from PIL import Image

from mnet_vision.serving.page import STATIC_DIR, WORLD_WIDTH, page_router, static_file, world_png


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(page_router())
    return TestClient(app)


def test_the_page_and_every_file_it_names_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    named = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(named) == ["/static/app.js", "/static/style.css"]
    for path, media in zip(sorted(named), ("text/javascript", "text/css")):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media)
        assert response.content == (STATIC_DIR / path.rsplit("/", 1)[1]).read_bytes()
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere


def test_the_page_fetches_nothing_but_the_service():
    script = (STATIC_DIR / "app.js").read_text()
    assert re.findall(r"https?://", script) == []
    assert re.findall(r"url\(", (STATIC_DIR / "style.css").read_text()) == []


@pytest.mark.parametrize("path", ["/static/..%2Fpage.py", "/static/%2e%2e%2fpage.py", "/static/..%5Cpage.py",
                                  "/static/page.py", "/static/.hidden.js", "/static/missing.js",
                                  "/static/%2Fetc%2Fpasswd", "/static/app.js%00.css"])
def test_no_file_outside_the_static_folder_is_served(client, path):
    response = client.get(path)
    assert response.status_code == 404, (path, response.text[:200])
    assert "import" not in response.text  # not page.py's source


@pytest.mark.parametrize("name", ["../page.py", "..\\page.py", "sub/app.js", "/etc/passwd", "", ".", "..", "app.py"])
def test_static_file_refuses_names_with_a_folder_or_an_unknown_type(name):
    with pytest.raises(HTTPException) as refused:
        static_file(name)
    assert refused.value.status_code == 404


def test_world_backdrop_is_equirectangular_with_land_where_the_cities_are(client):
    response = client.get("/world.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("L"), np.float64)
    assert image.shape == (WORLD_WIDTH // 2, WORLD_WIDTH)

    def shade(lat: float, lon: float) -> float:  # the page's own placement of a point
        x = int((lon + 180) / 360 * image.shape[1])
        y = int((90 - lat) / 180 * image.shape[0])
        return image[y, x]

    for lat, lon in [(51.5, -0.1), (28.6, 77.2), (-23.5, -46.6), (35.7, 139.7), (40.7, -74.0)]:  # cities: land
        assert shade(lat, lon) < 235, (lat, lon)
    for lat, lon in [(-38.0, -117.0), (-33.0, -17.0), (-42.0, 83.0), (12.0, -143.0), (-78.0, 5.0)]:  # open sea, ice
        assert shade(lat, lon) > 250, (lat, lon)
    for lat, lon in [(0.0, -143.0), (-60.0, -17.0), (-42.0, 90.0), (-33.0, -120.0)]:  # the 30° grid, at sea
        assert 200 < shade(lat, lon) < 250, (lat, lon)
    assert world_png() is world_png()  # drawn once per process
