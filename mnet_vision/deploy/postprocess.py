"""An exported SSD's raw outputs to detections, in numpy: the post-processing our PyTorch detectors
run after the network, computed the same way in float32.

- :func:`decode_boxes`: torchvision's ``BoxCoder.decode_single`` (weights 10, 10, 5, 5; ``dw``/``dh``
  clamped at ``log(1000 / 16)`` before ``exp``).
- :func:`nms` / :func:`batched_nms`: ``torchvision.ops.nms`` / ``batched_nms`` on CPU, tie order
  included: a stable sort by descending score, IoU in float32 compared to the threshold in double,
  ``> iou_threshold`` suppresses; per class by torchvision's coordinate offset trick up to 1000
  boxes and one NMS per class above (as torchvision switches on CPU; there torchvision orders the
  kept boxes with an unstable sort, so among exactly equal scores the order may differ from ours,
  which is by index; the boxes kept are the same).
- :func:`ssd_detections`: ``softmax`` (without class-agnostic NMS) = torchvision's
  ``SSD.postprocess_detections`` (boxes clipped first, per class ``score > score_thresh``, top-k,
  NMS, the best ``detections_per_img``); otherwise :class:`mnet_vision.heads.ssd.TFPostprocessSSD`'s
  (sigmoid scores without the background column or softmax, boxes unclipped until the end).
- :func:`to_original`: boxes from the ``S x S`` input back to the original image, as
  ``GeneralizedRCNNTransform.postprocess`` (``squash``: x by ``W / S``, y by ``H / S``) or
  ``LetterboxTransform.postprocess`` (``letterbox``: both by ``max(H, W) / S``, clipped to the image).

Shapes: ``A`` anchors, ``C + 1`` logit columns (background first), boxes xyxy in pixels.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
# torchvision.ops.batched_nms runs one NMS per class above this many box coordinates on CPU
_VANILLA_ABOVE = 4000


def decode_boxes(deltas: np.ndarray, anchors: np.ndarray, weights: Sequence[float] = BOX_CODER_WEIGHTS,
                 clip: float = BBOX_XFORM_CLIP) -> np.ndarray:
    """``(A, 4)`` (dx, dy, dw, dh) codes on ``(A, 4)`` xyxy anchors -> ``(A, 4)`` xyxy float32 boxes."""
    deltas = np.asarray(deltas, dtype=np.float32)
    anchors = np.asarray(anchors, dtype=np.float32)
    if deltas.shape != anchors.shape or deltas.ndim != 2 or deltas.shape[1] != 4:
        raise ValueError(f"box codes of shape {deltas.shape} do not fit anchors of shape {anchors.shape} (A, 4)")
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + np.float32(0.5) * widths
    ctr_y = anchors[:, 1] + np.float32(0.5) * heights
    wx, wy, ww, wh = (np.float32(w) for w in weights)
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = np.minimum(deltas[:, 2] / ww, np.float32(clip))
    dh = np.minimum(deltas[:, 3] / wh, np.float32(clip))
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    half_w = np.float32(0.5) * (np.exp(dw) * widths)
    half_h = np.float32(0.5) * (np.exp(dh) * heights)
    return np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=1)


def clip_boxes(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """``torchvision.ops.clip_boxes_to_image``: x into ``[0, width]``, y into ``[0, height]``."""
    boxes = boxes.copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, np.float32(width))
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, np.float32(height))
    return boxes


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices (int64) of the boxes NMS keeps, best score first: ``torchvision.ops.nms`` on CPU.

    Boxes are visited in a stable descending sort of ``scores``; each kept box suppresses the later
    boxes whose IoU with it (float32: ``inter / (area_i + area_j - inter)``) exceeds
    ``iou_threshold`` (compared in double, as torchvision's C++ kernel does)."""
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms expects (N, 4) boxes and (N,) scores, got {boxes.shape} and {scores.shape}")
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[order, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        rest = slice(i + 1, None)
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 of empty boxes: NaN, which suppresses nothing
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest] |= iou.astype(np.float64) > float(iou_threshold)
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, iou_threshold: float) -> np.ndarray:
    """``torchvision.ops.batched_nms`` on CPU: NMS within each group (class), indices best first."""
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    groups = np.asarray(groups)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if boxes.size > _VANILLA_ABOVE:
        keep_mask = np.zeros(len(boxes), dtype=bool)
        for group in np.unique(groups):
            members = np.nonzero(groups == group)[0]
            keep_mask[members[nms(boxes[members], scores[members], iou_threshold)]] = True
        kept = np.nonzero(keep_mask)[0]
        return kept[np.argsort(-scores[kept], kind="stable")]
    # the offset trick: boxes of different groups moved apart so that they never overlap, in float32
    offsets = groups.astype(np.float32) * (boxes.max() + np.float32(1))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.float32(1) / (np.float32(1) + np.exp(-logits))


def ssd_detections(bbox_regression: np.ndarray, cls_logits: np.ndarray, anchors: np.ndarray, size: int,
                   settings: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """One image's detections in the ``size x size`` input from its ``(A, 4)`` box codes and
    ``(A, C + 1)`` logits: ``{"boxes": (K, 4) float32 xyxy, "scores": (K,) float32, "labels": (K,)
    int64}`` best first, labels ``1..C``. ``settings``: the ``mnet_vision.detector`` metadata
    (``score_converter``, ``score_thresh``, ``nms_thresh``, ``detections_per_img``,
    ``topk_candidates``, ``class_agnostic_nms``, ``box_coder_weights``, ``bbox_xform_clip``)."""
    converter = settings.get("score_converter", "softmax")
    if converter not in ("softmax", "sigmoid"):
        raise ValueError(f"unknown score_converter {converter!r}; expected softmax or sigmoid")
    agnostic = bool(settings.get("class_agnostic_nms", False))
    thresh = np.float32(settings["score_thresh"])
    topk, per_image = int(settings["topk_candidates"]), int(settings["detections_per_img"])
    logits = np.asarray(cls_logits, dtype=np.float32)
    boxes = decode_boxes(bbox_regression, anchors, settings.get("box_coder_weights", BOX_CODER_WEIGHTS),
                         float(settings.get("bbox_xform_clip", BBOX_XFORM_CLIP)))
    torchvision_order = converter == "softmax" and not agnostic
    scores_all = _sigmoid(logits[:, 1:]) if converter == "sigmoid" else _softmax(logits)[:, 1:]
    if torchvision_order:
        boxes = clip_boxes(boxes, size, size)
    kept_boxes, kept_scores, kept_labels = [], [], []
    for column in range(scores_all.shape[1]):
        score = scores_all[:, column]
        index = np.nonzero(score > thresh)[0]
        order = np.argsort(-score[index], kind="stable")[:topk]
        kept_boxes.append(boxes[index[order]])
        kept_scores.append(score[index[order]])
        kept_labels.append(np.full(len(order), column + 1, dtype=np.int64))
    boxes, scores, labels = np.concatenate(kept_boxes), np.concatenate(kept_scores), np.concatenate(kept_labels)
    keep = batched_nms(boxes, scores, np.zeros_like(labels) if agnostic else labels,
                       float(settings["nms_thresh"]))[:per_image]
    boxes = boxes[keep] if torchvision_order else clip_boxes(boxes[keep], size, size)
    return {"boxes": boxes.reshape(-1, 4), "scores": scores[keep], "labels": labels[keep]}


def to_original(boxes: np.ndarray, size: int, height: int, width: int, resize: str = "squash") -> np.ndarray:
    """``(K, 4)`` xyxy boxes in the ``size x size`` input -> in the ``height x width`` original
    (module doc), float32."""
    boxes = np.asarray(boxes, dtype=np.float32)
    if resize == "letterbox":
        boxes = boxes * np.float32(max(height, width) / size)
        return clip_boxes(boxes, height, width)
    if resize != "squash":
        raise ValueError(f"unknown resize {resize!r}; expected squash or letterbox")
    ratio_h = np.float32(height) / np.float32(size)
    ratio_w = np.float32(width) / np.float32(size)
    return boxes * np.array([ratio_w, ratio_h, ratio_w, ratio_h], dtype=np.float32)
