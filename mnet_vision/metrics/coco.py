"""COCO detection metrics through pycocotools, with the checks pycocotools itself lacks.

pycocotools crashes on an empty result list (``IndexError`` in ``loadRes``), asserts with no detail
when result image ids are not in the ground truth, and silently scores detections of unknown
categories as false positives; it also keys its indexes by id, so two images under one id pool
their boxes and two annotations under one id score as one box twice, and a NaN box is a miss no
detection can match. :func:`load_coco_json` and :func:`annotation_problem` are the checks every
use of a COCO file needs: :func:`load_coco_gt` runs them, and so does the training reader
(:func:`mnet_vision.data.coco.read_coco`), so training and scoring see one file alike.
:func:`evaluate_coco` validates the detections. Every such case is a clear error that names the
file and entry, a counted and logged drop, or (no detections at all) a reported zero.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_convert

from mnet_vision.markdown import markdown_table
from mnet_vision.textfiles import read_json

log = logging.getLogger(__name__)

# The 12 numbers of COCOeval.summarize(), in its order.
COCO_METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


def finite_number(value: Any) -> bool:
    """An ``int`` or ``float`` that is finite, not a ``bool`` (JSON ``true`` is Python's 1, and
    ``float("nan")`` compares false with everything, so neither must pass as a coordinate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def is_integer_id(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (JSON ``true`` would match id 1 in a dict or set)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _first_repeats(entries: list[tuple[int, Any]]) -> list[str]:
    """``"<value> at [i] and [j]"`` for the first few values that occur twice in ``(index, value)``."""
    first: dict[Any, int] = {}
    repeats = []
    for i, value in entries:
        if value in first:
            repeats.append(f"{value!r} at [{first[value]}] and [{i}]")
        else:
            first[value] = i
    return repeats


def load_coco_json(source: str | Path | dict, what: str = "COCO annotation file") -> dict:
    """A COCO dataset dict from a JSON file (or a dict, checked as is), with lists under
    ``images``, ``annotations`` and ``categories``; errors name the file and the entry.

    The checks every use of the file needs, training and evaluation alike (``ValueError``, strict
    or not, since no choice of annotations could make such a file right): image ids, category ids
    and annotation ids present where required, integers, and unique (pycocotools keys its indexes
    by id: two pictures under one id pool their boxes, two annotations under one id become one
    box counted twice); file names unique; widths and heights positive. The text is UTF-8 with or
    without a BOM (:func:`mnet_vision.textfiles.read_json`).
    """
    data = source if isinstance(source, dict) else read_json(source, what)
    name = "<COCO dict>" if isinstance(source, dict) else str(source)
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{name}: expected a list under {key!r}")
        for i, entry in enumerate(data[key]):
            if not isinstance(entry, dict):
                raise ValueError(f"{name}: {key}[{i}] is {type(entry).__name__} {entry!r:.60}, expected an object")
    for key, required in (("images", True), ("categories", True), ("annotations", False)):
        ids = []
        for i, entry in enumerate(data[key]):
            if "id" not in entry and not required:
                continue
            if not is_integer_id(entry.get("id")):
                raise ValueError(f"{name}: {key}[{i}] has id {entry.get('id')!r}; expected an integer")
            ids.append((i, entry["id"]))
        repeats = _first_repeats(ids)
        if repeats:
            raise ValueError(f"{name}: {len(repeats)} repeated id(s) in {key!r}: {'; '.join(repeats[:3])} "
                             f"(ids must be unique)")
    files = [(i, img["file_name"]) for i, img in enumerate(data["images"]) if "file_name" in img]
    repeats = _first_repeats(files)
    if repeats:
        raise ValueError(f"{name}: {len(repeats)} file name(s) listed for more than one image: "
                         f"{'; '.join(repeats[:3])}")
    for i, img in enumerate(data["images"]):
        if "file_name" in img and not (isinstance(img["file_name"], str) and img["file_name"]):
            raise ValueError(f"{name}: images[{i}] (id {img['id']}) has file_name {img['file_name']!r}")
        for key in ("width", "height"):
            if key in img and not (finite_number(img[key]) and img[key] > 0 and float(img[key]).is_integer()):
                raise ValueError(f"{name}: images[{i}] (id {img['id']}) has {key} {img[key]!r}; expected a positive "
                                 f"whole number of pixels")
    return data


BAD_BBOX = "bbox is not 4 finite numbers [x, y, w, h]"


def annotation_problem(ann: dict, image_ids: Container, category_ids: Container) -> str | None:
    """Why an annotation with the keys ``image_id``, ``category_id`` and ``bbox`` cannot be used,
    training or evaluation alike, or ``None``: an ``image_id`` or ``category_id`` that is not
    declared (a ``bool`` is not an id, though ``True == 1``), a ``bbox`` that is not a list of 4
    finite numbers (NaN, infinity, strings, ``bool``) or has a negative width or height, an
    ``iscrowd`` other than 0 or 1. The reason names the value."""
    if not is_integer_id(ann["image_id"]) or ann["image_id"] not in image_ids:
        return f"image_id {ann['image_id']!r} is not in 'images'"
    if not is_integer_id(ann["category_id"]) or ann["category_id"] not in category_ids:
        return f"category_id {ann['category_id']!r} is not in 'categories'"
    box = ann["bbox"]
    if not (isinstance(box, list) and len(box) == 4 and all(finite_number(v) for v in box)):
        return BAD_BBOX
    if box[2] < 0 or box[3] < 0:
        return "box of zero or negative size"
    if ann.get("iscrowd", 0) not in (0, 1):  # "0" would be truthy: a silent crowd box
        return f"iscrowd {ann.get('iscrowd')!r} is not 0 or 1"
    return None


def _quiet(fn, *args, **kwargs):
    """Run a pycocotools call with its progress prints sent to the debug log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        out = fn(*args, **kwargs)
    if buffer.getvalue():
        log.debug("%s", buffer.getvalue().strip())
    return out


def load_coco_gt(source: str | Path | dict, strict: bool = False) -> COCO:
    """A pycocotools ``COCO`` from a ground-truth JSON file or dict, checked for the keys COCOeval
    needs (``images``, ``annotations`` with ``id``/``image_id``/``category_id``/``bbox``/``area``/
    ``iscrowd``, ``categories``) and by the training reader's file checks (unique integer ids and
    file names: :func:`load_coco_json`); errors name the file and the first offending entry.

    An annotation :func:`annotation_problem` refuses (undeclared image or
    category id, a ``bbox`` that is not 4 finite numbers or has a negative size, a bad
    ``iscrowd``), or whose ``area`` is not a finite number >= 0, is left out of the ground truth,
    counted by reason (``coco.dropped``, a ``Counter``) and logged, as the training reader drops
    it; with ``strict`` it raises ``ValueError`` naming the file and annotation id. Boxes of zero
    size and boxes outside their image stay: they are valid ground truth that pycocotools scores.
    """
    name = str(source) if not isinstance(source, dict) else "<COCO dict>"
    data = load_coco_json(source, "COCO ground truth")
    image_ids = {img["id"] for img in data["images"]}
    category_ids = {cat["id"] for cat in data["categories"]}
    kept, dropped = [], Counter()
    for i, ann in enumerate(data["annotations"]):
        missing = [k for k in ("id", "image_id", "category_id", "bbox", "area", "iscrowd") if k not in ann]
        if missing:
            raise ValueError(f"{name}: annotations[{i}] lacks {missing}")
        if ann["id"] == 0:  # COCOeval uses the id as a truth value: 0 is never matched
            raise ValueError(f"{name}: annotations[{i}] has id 0; COCO annotation ids must start at 1")
        problem = annotation_problem(ann, image_ids, category_ids)
        if problem is None and not (finite_number(ann["area"]) and ann["area"] >= 0):
            problem = "area is not a finite number >= 0"  # the small/medium/large ranges compare it
        if problem is None:
            kept.append(ann)
            continue
        if strict:
            raise ValueError(f"{name}: annotation id {ann['id']}: {problem} (bbox {ann['bbox']!r}, area "
                             f"{ann['area']!r}, image_id {ann['image_id']!r})")
        dropped[problem] += 1
        log.warning("%s: annotation id %s left out of the ground truth: %s (bbox %r)", name, ann["id"], problem,
                    ann["bbox"])
    if dropped:
        log.warning("%s: %d annotation(s) left out of the ground truth: %s", name, sum(dropped.values()), dict(dropped))
    coco = COCO()
    coco.dataset = {"info": {}, **data, "annotations": kept}
    _quiet(coco.createIndex)
    coco.dropped = dropped
    return coco


def validate_results(results: Sequence[dict], gt: COCO, source: str = "results") -> None:
    """Raise ``ValueError`` naming the first entries whose image id or category id is not in the
    ground truth, or whose ``bbox``/``score`` is malformed (``bbox`` is ``[x, y, w, h]``, w, h >= 0,
    finite numbers; ``bool`` is no number and no id, though ``True == 1``)."""
    image_ids, category_ids = set(gt.getImgIds()), set(gt.getCatIds())
    problems = []
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            problems.append(f"[{i}] is {type(r).__name__}, expected an object")
        elif not is_integer_id(r.get("image_id")) or r.get("image_id") not in image_ids:
            problems.append(f"[{i}] image_id {r.get('image_id')!r} is not in the ground truth")
        elif not is_integer_id(r.get("category_id")) or r.get("category_id") not in category_ids:
            problems.append(f"[{i}] category_id {r.get('category_id')!r} is not one of {sorted(category_ids)}")
        else:
            box, score = r.get("bbox"), r.get("score")
            if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(finite_number(v) for v in box)
                    and box[2] >= 0 and box[3] >= 0):
                problems.append(f"[{i}] bbox {box!r} is not a finite [x, y, w, h] with w, h >= 0")
            elif not finite_number(score):
                problems.append(f"[{i}] score {score!r} is not a finite number")
        if len(problems) >= 5:
            break
    if problems:
        raise ValueError(f"{source}: {len(problems)}+ bad detection(s): " + "; ".join(problems))


def load_results(source: str | Path | Sequence[dict]) -> list[dict]:
    """A COCO results list from a JSON file (or a list, returned as is)."""
    if not isinstance(source, (str, Path)):
        return list(source)
    data = read_json(source, "COCO results file")
    if not isinstance(data, list):
        raise ValueError(f"{source}: a COCO results file holds a list of detections, got {type(data).__name__}")
    return data


def evaluate_coco(gt: COCO | str | Path | dict, results: str | Path | Sequence[dict],
                  image_ids: Iterable[int] | None = None) -> dict[str, float]:
    """The 12 standard COCO box metrics (:data:`COCO_METRICS`), in [0, 1].

    Args:
        gt: ground truth (a ``COCO``, a JSON path or a dict).
        results: detections in COCO results format (``image_id``, ``category_id``, ``bbox`` xywh in
            original pixels, ``score``), as a list or a JSON path.
        image_ids: evaluate on these images only (default: every ground-truth image, so images
            with no detections count as misses).

    No detections at all gives zeros (pycocotools would crash). A metric with no ground truth in
    its range (e.g. no small objects) is -1, as pycocotools reports it.
    """
    gt = gt if isinstance(gt, COCO) else load_coco_gt(gt)
    source = str(results) if isinstance(results, (str, Path)) else "results"
    results = load_results(results)
    validate_results(results, gt, source)
    if not results:
        log.warning("%s holds no detections: every COCO metric is 0", source)
        return {name: 0.0 for name in COCO_METRICS}
    dt = _quiet(gt.loadRes, [dict(r) for r in results])  # loadRes adds keys: keep the caller's dicts intact
    evaluator = COCOeval(gt, dt, iouType="bbox")
    if image_ids is not None:
        evaluator.params.imgIds = sorted(image_ids)
    _quiet(evaluator.evaluate)
    _quiet(evaluator.accumulate)
    _quiet(evaluator.summarize)
    return {name: float(v) for name, v in zip(COCO_METRICS, np.asarray(evaluator.stats))}


def coco_table(metrics: dict[str, float]) -> str:
    """The 12 metrics as a Markdown table, in pycocotools' order."""
    return markdown_table([(name, f"{metrics[name]:.4f}") for name in COCO_METRICS if name in metrics],
                          ["metric", "value"])


def detections_to_results(image_id: int, boxes_xyxy: Any, labels: Any, scores: Any,
                          label_to_category: Sequence[int] | dict[int, int]) -> list[dict]:
    """COCO result entries for one image: boxes ``(N, 4)`` xyxy in original pixels, contiguous
    model labels mapped back to dataset category ids through ``label_to_category``."""
    # in float64 before subtracting, so float32 boxes give the widths they gave with numpy
    boxes = box_convert(torch.from_numpy(np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)), "xyxy", "xywh")
    labels = np.asarray(labels).reshape(-1).tolist()
    scores = np.asarray(scores, dtype=np.float64).reshape(-1).tolist()
    return [{"image_id": int(image_id), "category_id": int(label_to_category[int(label)]),
             "bbox": [round(float(v), 3) for v in box], "score": float(score)}
            for box, label, score in zip(boxes.tolist(), labels, scores)]
