"""Locating photos with a trained geolocation checkpoint: top-k cells with probabilities and a
predicted point per photo, as JSON, with optional maps; scored in km when the truth is known.

``tools/geolocate.py`` is a thin wrapper over :func:`geolocate_files`.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnet_vision.data.geotagged import read_geotagged_csv
from mnet_vision.data.transforms import apply_seeded
from mnet_vision.deploy.runtime import OnnxModel, is_onnx_path, load_onnx
from mnet_vision.geo.cells import GeoCellPartition
from mnet_vision.geo.distances import great_circle_km
from mnet_vision.geo.s2 import cell_centers, ids_to_tokens
from mnet_vision.heads.geocells import located_logits
from mnet_vision.images import MAX_PIXELS, image_files, readable_chunks
from mnet_vision.inference.load import load_model
from mnet_vision.metrics.geo import accuracy_table, geolocation_accuracy
from mnet_vision.outputs import drawing_paths, prepare_output_dir
from mnet_vision.textfiles import write_json
from mnet_vision.viz.geo import save_geolocation_map


class Geolocator:
    """The model of a geolocation checkpoint (``task=planet``) in eval mode, with the evaluation
    transform of the data it was trained on.

    Args:
        ckpt: one of our training checkpoints of a :class:`mnet_vision.tasks.GeolocationTask`, or
            its ``.onnx`` export, run by ONNX Runtime (:mod:`mnet_vision.deploy.runtime`: the same
            top-k cells, probabilities within 1e-4; ``device`` and ``fast`` do not apply).
        device: ``cpu`` or ``cuda``.
        partitions: optional cell files (coarsest first); they must be the ones the checkpoint was
            trained with (same cells in the same order), else an error names the file. The
            checkpoint itself holds its cells, so these are only a check.
        crops: 1 for the central crop; 5 for TIB's test protocol (each cell's highest probability
            over :class:`~mnet_vision.data.transforms.FiveCropEval`'s crops), 5x the compute.
        fast: the BN-folded channels_last model (probabilities equal the plain model's within 1e-4).
    """

    def __init__(self, ckpt: str | Path, device: str = "cpu", partitions: Sequence[str] | None = None,
                 crops: int = 1, fast: bool = True, threads: int | None = None):
        self.onnx: OnnxModel | None = None
        if is_onnx_path(ckpt):
            self._init_onnx(ckpt, partitions, crops, threads)
            return
        self.loaded = load_model(ckpt, fast, device)
        meta = self.loaded.meta
        if meta.task != "GeolocationTask":
            raise ValueError(f"{ckpt} is a {meta.task} checkpoint; geolocation needs task=planet")
        self.head = self.loaded.model.head
        if not self.head.has_partitions:
            raise ValueError(f"{ckpt} holds no cells: it was saved before training started")
        if partitions:
            self.head.set_partitions([GeoCellPartition.read_csv(p) for p in partitions])
        self.model = self.loaded.model
        self.transform = meta.eval_transform(crops)
        self.device = device
        self.partition = self.head.partition(-1, str(ckpt))
        self.tokens = ids_to_tokens(self.partition.cell_ids)

    def _init_onnx(self, path: str | Path, partitions: Sequence[str] | None, crops: int,
                   threads: int | None) -> None:
        self.onnx = load_onnx(path, threads, task="GeolocationTask")
        geo = self.onnx.meta.geo
        if not geo or not geo.get("partitions"):
            raise ValueError(f"{path} has no 'mnet_vision.geo' metadata entry: its cells are unknown (a foreign "
                             "model, or not exported by mnet_vision: tools/export.py)")
        if crops not in (1, 5):
            raise ValueError(f"crops must be 1 (central crop) or 5 (FiveCrop), got {crops}")
        self.crops = crops
        held = [self._onnx_partition(p, f"{path} partition {i}") for i, p in enumerate(geo["partitions"])]
        if partitions:
            given = [GeoCellPartition.read_csv(p) for p in partitions]
            if len(given) != len(held):
                raise ValueError(f"{path} has {len(held)} partition(s) but {len(given)} partition file(s) were given: "
                                 f"{list(partitions)}")
            for mine, theirs in zip(held, given):
                if not np.array_equal(mine.cell_ids, theirs.cell_ids):
                    raise ValueError(f"{theirs.source} is not the partition {path} was exported with "
                                     f"({len(theirs)} cells there, {len(mine)} in the model, or other cells)")
        self.partition = held[-1]
        self.tokens = ids_to_tokens(self.partition.cell_ids)

    @staticmethod
    def _onnx_partition(entry: dict[str, Any], source: str) -> GeoCellPartition:
        """A partition of the export's ``mnet_vision.geo`` metadata, as the head holds it."""
        ids = np.array([int(i) for i in entry["cell_ids"]], dtype=np.uint64)
        points = np.asarray(entry["cell_points"], dtype=np.float64).reshape(-1, 2)
        lat_center, lon_center = cell_centers(ids)
        return GeoCellPartition(ids, np.asarray(entry["cell_counts"], dtype=np.int64), points[:, 0], points[:, 1],
                                lat_center, lon_center, source)

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` probabilities of the finest cells (hierarchical product when several partitions)."""
        images = images.to(self.device)
        if self.loaded.fast:  # (N, 3, S, S) photos or (N, K, 3, S, S) crops: NHWC per image either way
            images = images.flatten(0, -4).contiguous(memory_format=torch.channels_last).view(images.shape)
        return self.head.log_probabilities(located_logits(self.model, images)).exp().cpu()

    def locate(self, arrays: Sequence[np.ndarray], top_k: int = 5) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Probabilities ``(N, C)`` of RGB uint8 images, and each image's top-k cells (best first):
        ``{"class", "token", "probability", "lat", "lon"}`` with the cell's mean photo location."""
        if self.onnx is not None:
            probs = torch.from_numpy(self.onnx.geo_probabilities(list(arrays), self.crops))
        else:
            batch = torch.stack([apply_seeded(self.transform, 0, image=array)["image"] for array in arrays])
            probs = self.probabilities(batch)
        top_p, top_c = probs.topk(min(top_k, probs.shape[1]), dim=1)
        cells = [[{"class": int(c), "token": self.tokens[c], "probability": float(p),
                   "lat": float(self.partition.lat_mean[c]), "lon": float(self.partition.lon_mean[c])}
                  for p, c in zip(ps.tolist(), cs.tolist())] for ps, cs in zip(top_p, top_c)]
        return probs.numpy(), cells


def _inputs(source: str | Path, images: str | Path | None) -> tuple[list[Path], dict[Path, tuple[float, float]]]:
    """Image files from a file, a folder, or a geotagged CSV (with its true locations, image paths
    relative to ``images``, by default the CSV's folder)."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        photos = read_geotagged_csv(source)
        root = Path(images) if images is not None else source.parent
        files = [root / p for p in photos.paths]
        return files, {f: (float(a), float(o)) for f, a, o in zip(files, photos.lat, photos.lon)}
    return image_files(source), {}


def geolocate_files(ckpt: str | Path, source: str | Path, out_dir: str | Path, top_k: int = 5, batch_size: int = 32,
                    draw: bool = False, device: str = "cpu", partitions: Sequence[str] | None = None,
                    images: str | Path | None = None, crops: int = 1,
                    max_pixels: int | None = MAX_PIXELS, fast: bool = True) -> dict[str, Any]:
    """Locate the photos of an image file, a folder, or a geotagged CSV (``path,lat,lon``).

    Writes ``out_dir/geolocation.json``: one entry per photo, ``{"file", "lat", "lon" (the
    predicted point: the best cell's mean photo location), "cells": top-k cells with
    probabilities}``, plus ``"true_lat"``, ``"true_lon"`` and ``"error_km"`` for a CSV; with
    ``draw``, ``out_dir/<name>.png`` maps of each photo's top cells (``photo.jpg`` -> ``photo.jpg.png``,
    below the photos' common folder). Unreadable images, and images over ``max_pixels``, are skipped
    and listed. An ``out_dir`` that
    is not writable, or is (or lies inside) a folder of the photos, is refused before any work.
    The returned summary has the counts, photos/s and, for a CSV, the
    accuracy at Table 11's scales (``accuracy``, and ``table`` in its layout). ``fast``: the
    BN-folded channels_last model (:class:`Geolocator`).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    files, truth = _inputs(source, images)
    out_dir = prepare_output_dir(out_dir, files)
    drawings = dict(zip(files, drawing_paths(files, out_dir)))
    locator = Geolocator(ckpt, device, partitions, crops, fast)
    entries, skipped = [], []
    start = time.perf_counter()
    for chunk in readable_chunks(files, batch_size, skipped, "geolocating", max_pixels):
        if chunk:
            probs, cells = locator.locate([array for _, array in chunk], top_k)
            for (path, _), prob, top in zip(chunk, probs, cells):
                entry = {"file": str(path), "lat": top[0]["lat"], "lon": top[0]["lon"], "cells": top}
                if path in truth:
                    entry["true_lat"], entry["true_lon"] = truth[path]
                    entry["error_km"] = float(great_circle_km(entry["lat"], entry["lon"], *truth[path]))
                entries.append(entry)
                if draw:
                    save_geolocation_map(locator.partition, prob, drawings[path],
                                         predicted=(entry["lat"], entry["lon"]), truth=truth.get(path), top_k=top_k,
                                         title=path.name)
    seconds = time.perf_counter() - start
    write_json(out_dir / "geolocation.json", entries)
    summary: dict[str, Any] = {"json": str(out_dir / "geolocation.json"), "photos": len(entries), "skipped": skipped,
                               "photos_per_second": len(files) / seconds if seconds > 0 else 0.0}
    scored = [e for e in entries if "true_lat" in e]
    if scored:
        summary["accuracy"] = geolocation_accuracy(*(np.array([e[k] for e in scored]) for k in
                                                     ("lat", "lon", "true_lat", "true_lon")))
        summary["table"] = accuracy_table({"model": summary["accuracy"]})
    return summary
