"""The accuracy gate of INT8 quantization: the task's own metric on a held-out split for the fp32
export and its INT8 quantization side by side, and a refusal to write an INT8 model that loses
more than a tolerance.

    >>> report = gate("model.onnx", "model.int8.onnx", datamodule, split="test", tolerance=1.0)
    >>> report.passed, report.loss                      # points of the task's metric
    >>> quantize_with_gate("model.onnx", "model.int8.onnx", calibration_files, datamodule)  # refuses

Every metric is on a 0-100 scale, so one ``tolerance`` (default 1.0) means one point of it:

- classification (``ClassificationTask``): top-1 accuracy in %, over the split's ImageFolder images;
- detection (``DetectionTask``): COCO box AP (IoU 0.50:0.95) x 100 through
  :func:`mnet_vision.metrics.coco.evaluate_coco` (pycocotools), 1 point = 0.01 AP;
- embedding (``EmbeddingTask``): verification accuracy in % (10-fold, LFW protocol,
  :func:`mnet_vision.metrics.verification.kfold_accuracy`) over every pair of the split's identity
  folders (:func:`~mnet_vision.metrics.verification.all_pairs`), cosine similarity of the embeddings;
- attributes (``AttributeTask``): mean AP over the attributes x 100
  (:func:`mnet_vision.metrics.attributes.attribute_report`, unknown labels left out).

Geolocation (km accuracy) is not gated yet: :func:`gate` says so.

Both models run through :func:`mnet_vision.deploy.runtime.load_onnx`'s task helpers on the same
decoded images (the deployed path: numpy preprocessing, numpy post-processing); an unreadable image
is a logged, counted skip for both. The data comes from the run's DataModule (``instantiate(cfg.data)``),
its split files and labels, never its torch transforms.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnet_vision.deploy.metadata import read_exported
from mnet_vision.deploy.quantize import quantize_int8
from mnet_vision.deploy.runtime import OnnxModel, load_onnx
from mnet_vision.images import IMG_EXTENSIONS, ImageReadError, read_rgb
from mnet_vision.metrics.attributes import attribute_report
from mnet_vision.metrics.coco import detections_to_results, evaluate_coco
from mnet_vision.metrics.verification import all_pairs, kfold_accuracy

log = logging.getLogger(__name__)

#: Each task's gate metric (0-100 scale).
METRICS = {"ClassificationTask": "top-1 (%)", "DetectionTask": "COCO AP (x100)",
           "EmbeddingTask": "verification accuracy (%)", "AttributeTask": "mean AP (x100)"}
DEFAULT_TOLERANCE = 1.0


class Int8GateError(ValueError):
    """The INT8 model loses more of the task's metric than the tolerance allows: it is not written."""


@dataclass(frozen=True)
class GateReport:
    """fp32 and INT8 values of ``metric`` (0-100 scale) on ``images`` images of ``split``;
    ``loss`` = fp32 - int8 (points; negative: INT8 scored higher); ``passed``: loss <= tolerance."""

    metric: str
    fp32: float
    int8: float
    loss: float
    tolerance: float
    passed: bool
    split: str
    images: int
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def message(self) -> str:
        verdict = "within" if self.passed else "exceeds"
        return (f"{self.metric} on the {self.split} split ({self.images} images): fp32 {self.fp32:.2f}, "
                f"INT8 {self.int8:.2f}, a loss of {self.loss:.2f} points, which {verdict} the tolerance of "
                f"{self.tolerance:.2f}")


def _readable(paths: Sequence[Path]) -> tuple[list[np.ndarray], list[int], int]:
    """The decoded images of ``paths`` (RGB uint8), the indices they came from, and the skip count."""
    images, kept = [], []
    for i, path in enumerate(paths):
        try:
            images.append(read_rgb(path))
            kept.append(i)
        except ImageReadError as err:
            log.warning("gate: skipping %s", err)
    if len(kept) < len(paths):
        log.warning("gate: skipped %d unreadable image(s) of %d", len(paths) - len(kept), len(paths))
    if not images:
        raise ValueError(f"the gate's split has no readable images ({len(paths)} given)")
    return images, kept, len(paths) - len(kept)


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _split_dataset(data: Any, split: str) -> Any:
    """``data``'s dataset of ``split`` (``val`` or ``test``) after ``prepare_data`` and ``setup``."""
    if split not in ("val", "test"):
        raise ValueError(f"the gate measures a held-out split: 'val' or 'test', got {split!r}")
    data.prepare_data()
    data.setup("test" if split == "test" else "validate")
    return data.test_set if split == "test" else data.val_set


def _check_classes(model: OnnxModel, names: Sequence[str] | None, source: str) -> None:
    exported = model.meta.class_names
    if exported is not None and names is not None and list(exported) != list(names):
        raise ValueError(f"{model.meta.path}'s class names {list(exported)[:5]}... differ from {source}'s "
                         f"{list(names)[:5]}...: the gate would score the wrong labels")


def classification_top1(models: Sequence[OnnxModel], data: Any, split: str, batch_size: int = 32
                        ) -> tuple[list[float], int, int]:
    """Top-1 (%) of each model over ``split``'s ImageFolder images; the images scored and skipped."""
    dataset = _split_dataset(data, split)
    for model in models:
        _check_classes(model, getattr(dataset, "classes", None), str(dataset.split_dir))
    paths, labels = zip(*dataset.samples)
    images, kept, skipped = _readable([Path(p) for p in paths])
    labels = np.asarray(labels)[kept]
    scores = []
    for model in models:
        predicted = np.concatenate([model.classify(chunk).argmax(axis=1) for chunk in _chunks(images, batch_size)])
        scores.append(100.0 * float((predicted == labels).mean()))
    return scores, len(images), skipped


def detection_ap(models: Sequence[OnnxModel], data: Any, split: str, batch_size: int = 8
                 ) -> tuple[list[float], int, int]:
    """COCO AP x 100 of each model over ``split``'s COCO images (pycocotools); images scored and skipped."""
    dataset = _split_dataset(data, split)
    gt = data.ground_truth(split)
    label_to_category = data.label_to_category
    for model in models:
        _check_classes(model, data.class_names, str(dataset.image_dir))
    infos = dataset.index.images
    images, kept, skipped = _readable([dataset.image_dir / info["file_name"] for info in infos])
    ids = [infos[i]["id"] for i in kept]
    scores = []
    for model in models:
        results = []
        for chunk_ids, chunk in zip(_chunks(ids, batch_size), _chunks(images, batch_size)):
            for image_id, det in zip(chunk_ids, model.detect(chunk)):
                results += detections_to_results(image_id, det["boxes"], det["labels"], det["scores"],
                                                 label_to_category)
        scores.append(100.0 * evaluate_coco(gt, results, image_ids=ids)["AP"])
    return scores, len(images), skipped


def verification_accuracy(models: Sequence[OnnxModel], data: Any, split: str, batch_size: int = 32
                          ) -> tuple[list[float], int, int]:
    """10-fold verification accuracy (%) of each model over every pair of ``split``'s identity
    images (cosine similarity); images scored and skipped."""
    dataset = _split_dataset(data, split)
    paths, identities = zip(*dataset.samples)
    images, kept, skipped = _readable([Path(p) for p in paths])
    identities = np.asarray(identities)[kept]
    scores = []
    for model in models:
        embeddings = np.concatenate([model.embed(chunk) for chunk in _chunks(images, batch_size)])
        similarity, issame = all_pairs(embeddings, identities)
        scores.append(100.0 * kfold_accuracy(similarity, issame).mean)
    return scores, len(images), skipped


def attribute_mean_ap(models: Sequence[OnnxModel], data: Any, split: str, batch_size: int = 32
                      ) -> tuple[list[float], int, int]:
    """Mean AP x 100 over the attributes (unknown labels left out, as the task's test step scores it,
    :func:`mnet_vision.metrics.attributes.attribute_report`) of each model over ``split``'s images."""
    dataset = _split_dataset(data, split)
    table = dataset.table
    images, kept, skipped = _readable(dataset_files(dataset))
    labels = torch.from_numpy(np.asarray(table.labels)[kept].astype(np.int64))
    scores = []
    for model in models:
        logits = np.concatenate([model.classify(chunk) for chunk in _chunks(images, batch_size)])
        scores.append(100.0 * attribute_report(torch.from_numpy(logits), labels).mean_ap)
    return scores, len(images), skipped


EVALUATORS: dict[str, Callable[..., tuple[list[float], int, int]]] = {
    "ClassificationTask": classification_top1, "DetectionTask": detection_ap, "EmbeddingTask": verification_accuracy,
    "AttributeTask": attribute_mean_ap}


def dataset_files(dataset: Any) -> list[Path]:
    """The image files of one split's dataset, in its order: an ImageFolder's (classification,
    identities), a COCO index's, an attribute table's."""
    if hasattr(dataset, "samples"):
        return [Path(path) for path, _ in dataset.samples]
    if hasattr(dataset, "index"):
        return [dataset.image_dir / info["file_name"] for info in dataset.index.images]
    if hasattr(dataset, "table"):
        return [dataset.folder / name for name in dataset.table.files]
    raise ValueError(f"cannot list the image files of a {type(dataset).__name__}: give calib=<folder of images>")


def calibration_files(source: str | Path, data: Any = None, limit: int | None = 256) -> list[Path]:
    """Calibration image files: the images under folder ``source`` (recursively, sorted), or with
    ``source`` a split name (``train``, ``val``, ``test``) the images of that split of DataModule
    ``data``; at most ``limit`` of them, evenly spaced (so a class-sorted list keeps every class)."""
    if str(source) in ("train", "val", "test") and not Path(source).is_dir():
        if data is None:
            raise ValueError(f"calib={source} names a split, but there is no data config to read it from "
                             "(a pretrained model): give a folder of images")
        data.prepare_data()
        data.setup("fit")
        dataset = {"train": data.train_set, "val": data.val_set, "test": data.test_set}[str(source)]
        files = dataset_files(dataset)
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"calibration folder {folder} does not exist (give a folder of images or a "
                                    "split name: train, val, test)")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def gate(fp32_onnx: str | Path, int8_onnx: str | Path, data: Any, split: str = "test",
         tolerance: float = DEFAULT_TOLERANCE, threads: int = 2) -> GateReport:
    """The task's metric (:data:`METRICS`) of both exported models on ``split`` of DataModule
    ``data``, side by side: a :class:`GateReport` (``passed`` when fp32 - INT8 <= ``tolerance`` points)."""
    if tolerance < 0:
        raise ValueError(f"tolerance is a loss in points of the metric, >= 0; got {tolerance}")
    fp32_model = load_onnx(fp32_onnx, threads=threads)
    task = fp32_model.meta.task
    if task not in EVALUATORS:
        raise ValueError(f"{fp32_onnx}: the INT8 gate measures {sorted(EVALUATORS)}, not a {task} model")
    int8_model = load_onnx(int8_onnx, threads=threads, task=task)
    (fp32, int8), images, skipped = EVALUATORS[task]([fp32_model, int8_model], data, split)
    loss = fp32 - int8
    report = GateReport(METRICS[task], fp32, int8, loss, float(tolerance), loss <= tolerance + 1e-9, split, images,
                        skipped)
    log.info("INT8 gate: %s", report.message())
    return report


def quantize_with_gate(fp32_onnx: str | Path, out: str | Path, calibration: Sequence[str | Path], data: Any,
                       split: str = "test", tolerance: float = DEFAULT_TOLERANCE, threads: int = 2,
                       **quantize: Any) -> tuple[Path, GateReport]:
    """:func:`mnet_vision.deploy.quantize.quantize_int8` of ``fp32_onnx`` into ``out`` (``quantize``:
    its keyword options), written only if :func:`gate` passes; the gate's report is stored in the
    file's ``mnet_vision.quantization.gate``. A failing gate is an :class:`Int8GateError` saying by
    how much, and ``out`` is not written (an older file there is left as it was)."""
    reports: list[GateReport] = []

    def check(int8_path: Path) -> dict[str, Any]:
        report = gate(fp32_onnx, int8_path, data, split, tolerance, threads)
        reports.append(report)
        if not report.passed:
            raise Int8GateError(f"INT8 model refused, not written to {out}: {report.message()} "
                                f"(by {report.loss - report.tolerance:.2f} points)")
        return report.as_dict()

    read_exported(fp32_onnx)  # a bad file fails before calibration reads any image
    path = quantize_int8(fp32_onnx, out, calibration, threads=threads, gate=check, **quantize)
    return path, reports[-1]


def quantization_summary(path: str | Path) -> str:
    """One line per fact of INT8 file ``path``'s ``mnet_vision.quantization``: settings, calibration,
    the gate's table (when gated) and the rough speed comparison."""
    info = read_exported(path).quantization or {}
    lines = [f"{path}: INT8 {info.get('format', 'QDQ')}, activations {info.get('activation_type')}, weights "
             f"{info.get('weight_type')} {'per channel' if info.get('per_channel') else 'per tensor'}, reduce_range "
             f"{info.get('reduce_range')} ({'VNNI' if info.get('vnni') else 'no VNNI'}), calibrated on "
             f"{info.get('calibration_images')} images ({info.get('calibration_skipped', 0)} unreadable skipped), "
             f"{Path(path).stat().st_size / max(1, info.get('fp32_bytes', 1)):.0%} of the fp32 file"]
    if "gate" in info:
        g = info["gate"]
        lines.append(f"gate: {g['metric']} on the {g['split']} split ({g['images']} images): fp32 {g['fp32']:.2f}, "
                     f"INT8 {g['int8']:.2f}, loss {g['loss']:.2f} <= tolerance {g['tolerance']:.2f}")
    else:
        lines.append("gate: none (gate=false): the INT8 model's accuracy was not measured")
    if "speed" in info:
        sp = info["speed"]
        lines.append(f"speed (rough, batch {sp['batch']}, {sp['threads']} threads): fp32 {sp['fp32_ms']:.1f} ms, "
                     f"INT8 {sp['int8_ms']:.1f} ms: INT8 is {'faster' if sp['int8_faster'] else 'NOT clearly faster'} "
                     f"on this CPU (x{sp['speedup']:.2f})")
    return "\n".join(lines)
