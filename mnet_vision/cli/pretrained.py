"""Fetch a pinned pretrained package into the cache and say what it holds.

    python tools/pretrained.py name=faceapi [cache=DIR] [download=true]
    python tools/pretrained.py name=face_recognition_images   # the face photos of face-recognition's sdist
    python tools/pretrained.py                 # lists the packages and whether each is cached

name: a key of mnet_vision.pretrained.fetch.PACKAGES, or all. cache: the cache folder (default
$MNET_VISION_CACHE, else ~/.cache/mnet_vision). download=false uses only what the cache holds (a
tarball placed there by hand included). npm packages are fetched with npm, Python sdists with this
interpreter's pip. Prints the folder, the pinned version, sha256, license and the required files
with their sizes. Defaults: conf/pretrained.yaml.
"""
import logging
import sys

import hydra
from omegaconf import DictConfig

from mnet_vision.config import CONF_DIR
from mnet_vision.markdown import markdown_table
from mnet_vision.pretrained.fetch import (
    PACKAGES,
    FetchError,
    cache_dir,
    describe_package,
    fetch_package,
    is_cached,
    package_folder,
)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="pretrained")
def main(cfg: DictConfig) -> None:
    # the fetch's progress lines ("fetching ...", "fetched ... (12.7 MB) in 2.1 s") are INFO logs
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = cfg.cache if cfg.cache is not None else cache_dir()
    if cfg.name is None:
        rows = [(name, p.pinned, p.license, "yes" if is_cached(name, cache) else "no", package_folder(name, cache))
                for name, p in PACKAGES.items()]
        print(markdown_table(rows, ("name", "package", "license", "cached", "folder"), align="lllll"))
        print("fetch one with: python tools/pretrained.py name=NAME (or name=all)")
        return
    names = list(PACKAGES) if cfg.name == "all" else [str(cfg.name)]
    try:
        for name in names:
            print(describe_package(name, fetch_package(name, cache=cache, download=bool(cfg.download))))
    except FetchError as error:
        sys.exit(f"error: {error}")
