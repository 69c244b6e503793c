"""SSD300 on MobileNet taps, laid out as the TF Object Detection API's ``ssd_mobilenet_v1``.

torchvision's ``SSD`` supplies the machinery (SSDMatcher at IoU 0.5 with every ground-truth box
forced onto its best anchor, BoxCoder 10/10/5/5, softmax loss with 3:1 hard-negative mining,
smooth-L1 box loss, per-class NMS); this module supplies what TF's layout defines and torchvision
lacks: the four extra layers, the 1x1 box predictor and the anchor layout with 3 anchors on the
lowest layer (1917 anchors at 300x300). With alpha 1.0 and 91 classes it counts 6.8 M parameters
and 1.2 B Mult-Adds (Table 13 of the MobileNets paper).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD, SSDScoringHead
from torchvision.ops import batched_nms, clip_boxes_to_image

from mnet_vision.backbones.mobilenet_v1 import PADDINGS, ConvBNAct, scaled_depth
from mnet_vision.backbones.taps import Tap
from mnet_vision.heads.detector import DetectorHead, TapFeatures
from mnet_vision.heads.letterbox import LetterboxTransform

TF_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
INTERPOLATED_ANCHOR = ("last", "second")
SCORE_CONVERTERS = ("softmax", "sigmoid")


class SSDAnchorGenerator(DefaultBoxGenerator):
    """TF's ``ssd_anchor_generator`` (``create_ssd_anchors``) as a torchvision ``DefaultBoxGenerator``.

    Layer ``k`` of ``num_layers`` has scale ``s_k = min_scale + (max_scale - min_scale) k / (n - 1)``
    and one anchor per aspect ratio ``ar`` (width ``s_k sqrt(ar)``, height ``s_k / sqrt(ar)``, relative
    to the image) plus one of ratio 1 at ``sqrt(s_k s_{k+1})`` (``s_n = 1``). With
    ``reduce_boxes_in_lowest_layer`` (TF's default) layer 0 has only (0.1, 1), (s_0, 2), (s_0, 1/2).
    Centres sit at ``(i + 0.5) / grid``; boxes are not clipped (TF does not clip them either).

    ``interpolated_anchor``: where the ``sqrt(s_k s_{k+1})`` anchor sits among a location's anchors:
    ``last`` (TF today) or ``second``, right after ratio 1 (TF's 2017 code, which the models of that
    year, face-api's detector among them, were trained with). The order is the order of the box
    predictor's output channels, so weights only fit the layout they were trained with.
    """

    def __init__(self, num_layers: int = 6, min_scale: float = 0.2, max_scale: float = 0.95,
                 aspect_ratios: Sequence[float] = TF_ASPECT_RATIOS, reduce_boxes_in_lowest_layer: bool = True,
                 interpolated_anchor: str = "last"):
        if interpolated_anchor not in INTERPOLATED_ANCHOR:
            raise ValueError(f"SSDAnchorGenerator: unknown interpolated_anchor {interpolated_anchor!r}; "
                             f"choose one of {list(INTERPOLATED_ANCHOR)}")
        if num_layers < 2:
            raise ValueError(f"SSDAnchorGenerator: num_layers must be >= 2, got {num_layers}")
        if not 0 < min_scale < max_scale <= 1:
            raise ValueError(f"SSDAnchorGenerator: need 0 < min_scale < max_scale <= 1, got {min_scale}, {max_scale}")
        scales = [min_scale + (max_scale - min_scale) * k / (num_layers - 1) for k in range(num_layers)] + [1.0]
        specs: list[list[tuple[float, float]]] = []  # (scale, aspect ratio) per anchor, per layer
        for k in range(num_layers):
            if k == 0 and reduce_boxes_in_lowest_layer:
                specs.append([(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)])
            else:
                layer = [(scales[k], float(ar)) for ar in aspect_ratios]
                between = (math.sqrt(scales[k] * scales[k + 1]), 1.0)
                if interpolated_anchor == "second":
                    if 1.0 not in aspect_ratios:
                        raise ValueError("SSDAnchorGenerator: interpolated_anchor='second' follows aspect ratio 1, "
                                         f"which aspect_ratios {list(aspect_ratios)} lacks")
                    at = [ar for _, ar in layer].index(1.0) + 1
                    layer.insert(at, between)
                else:
                    layer.append(between)
                specs.append(layer)
        super().__init__([[float(ar) for _, ar in layer] for layer in specs], scales=scales, clip=False)
        self.specs = specs
        # torchvision's own (w, h) pairs follow the Caffe SSD layout; replace them with TF's.
        self._wh_pairs = [torch.tensor([[s * math.sqrt(ar), s / math.sqrt(ar)] for s, ar in layer])
                          for layer in specs]

    def num_anchors_per_location(self) -> list[int]:
        return [len(layer) for layer in self.specs]


class SSDBoxPredictor(nn.Module):
    """TF's ``convolutional_box_predictor``: per feature map one conv to ``anchors * num_classes``
    logits and one to ``anchors * 4`` box deltas (kernel 1 as in ``ssd_mobilenet_v1``; 3 for the
    Caffe/torchvision SSD head). Output as torchvision's ``SSDHead``: ``{"cls_logits": (N, A, C),
    "bbox_regression": (N, A, 4)}``."""

    def __init__(self, in_channels: Sequence[int], num_anchors: Sequence[int], num_classes: int, kernel_size: int = 1):
        super().__init__()

        def convs(columns: int) -> nn.ModuleList:
            return nn.ModuleList(nn.Conv2d(c, a * columns, kernel_size, padding=kernel_size // 2)
                                 for c, a in zip(in_channels, num_anchors))

        self.classification_head = SSDScoringHead(convs(num_classes), num_classes)
        self.regression_head = SSDScoringHead(convs(4), 4)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # as torchvision's SSDHead
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"bbox_regression": self.regression_head(features), "cls_logits": self.classification_head(features)}


class TFPostprocessSSD(SSD):
    """torchvision's ``SSD`` with a choice of post-processing.

    ``softmax`` (torchvision's): softmax over background + classes, boxes clipped to the image,
    then per class score threshold, top-k and NMS. ``sigmoid`` (TF's ``score_converter: SIGMOID``,
    the order of its ``batch_multiclass_non_max_suppression``): a sigmoid per object column, the
    background column not read; boxes decoded and left unclipped; per class (or across classes,
    ``class_agnostic_nms``) the scores above ``score_thresh``, at most ``topk_candidates``, NMS at
    ``nms_thresh``; the best ``detections_per_img`` kept; boxes clipped to the image last.
    """

    def __init__(self, *args, score_converter: str = "softmax", class_agnostic_nms: bool = False, **kwargs):
        if score_converter not in SCORE_CONVERTERS:
            raise ValueError(f"SSD: unknown score_converter {score_converter!r}; "
                             f"choose one of {list(SCORE_CONVERTERS)}")
        super().__init__(*args, **kwargs)
        self.score_converter, self.class_agnostic_nms = score_converter, class_agnostic_nms

    def postprocess_detections(self, head_outputs: dict[str, Tensor], image_anchors: list[Tensor],
                               image_shapes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        if self.score_converter == "softmax" and not self.class_agnostic_nms:
            return super().postprocess_detections(head_outputs, image_anchors, image_shapes)
        logits = head_outputs["cls_logits"]
        if self.score_converter == "sigmoid":
            scores_all = torch.sigmoid(logits[..., 1:])
        else:
            scores_all = torch.softmax(logits, dim=-1)[..., 1:]
        detections = []
        for deltas, scores, anchors, shape in zip(head_outputs["bbox_regression"], scores_all, image_anchors,
                                                  image_shapes):
            boxes = self.box_coder.decode_single(deltas, anchors)
            kept_boxes, kept_scores, kept_labels = [], [], []
            for column in range(scores.shape[1]):
                score = scores[:, column]
                keep = torch.nonzero(score > self.score_thresh).squeeze(1)
                score, order = score[keep].topk(min(self.topk_candidates, keep.numel()))
                kept_boxes.append(boxes[keep[order]])
                kept_scores.append(score)
                kept_labels.append(torch.full_like(order, column + 1))
            boxes, scores, labels = torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels)
            groups = torch.zeros_like(labels) if self.class_agnostic_nms else labels
            keep = batched_nms(boxes, scores, groups, self.nms_thresh)[: self.detections_per_img]
            detections.append({"boxes": clip_boxes_to_image(boxes[keep], shape), "scores": scores[keep],
                               "labels": labels[keep]})
        return detections


def extra_layer(in_ch: int, depth: int, activation: type[nn.Module] = nn.ReLU6,
                padding: str = "symmetric") -> nn.Sequential:
    """TF ``multi_resolution_feature_maps`` with ``insert_1x1_conv``: 1x1 to ``depth / 2``, then 3x3
    stride 2 to ``depth``, each with BatchNorm and ReLU6; ``padding`` as the backbone's."""
    kw = dict(activation=activation, bn_eps=1e-3, bn_momentum=0.03,  # TF: BN eps 1e-3, decay 0.97-0.9997
              padding=padding)
    return nn.Sequential(ConvBNAct(in_ch, depth // 2, 1, 1, groups=1, **kw),
                         ConvBNAct(depth // 2, depth, 3, 2, groups=1, **kw))


class SSD300Head(DetectorHead):
    """SSD on a backbone's taps (normally ``conv11`` at stride 16 and ``conv13`` at stride 32).

    Args:
        in_taps: the backbone's requested taps, in order (their channels size the layers).
        backbone: the model's backbone (held, not owned; see :mod:`mnet_vision.heads.detector`).
        num_classes: object classes; the head adds the background class (label 0), so COCO's 80
            categories give 81 outputs (the paper and TF count 90 + 1 = 91).
        extra_depths: output depths of the extra layers (TF: 512, 256, 256, 128), scaled like the
            backbone by ``width_multiplier`` with TF's ``max(int(d * alpha), min_depth)``.
        size: the square side images are resized to (300 for SSD300).
        predictor_kernel: 1 (TF) or 3 (Caffe / torchvision).
        min_scale, max_scale, aspect_ratios, reduce_boxes_in_lowest_layer, interpolated_anchor:
            :class:`SSDAnchorGenerator`.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: post-processing (TF: NMS IoU
            0.6, 100 detections; COCO scores at most 100 per image).
        score_converter, class_agnostic_nms: :class:`TFPostprocessSSD` (``softmax``: torchvision's).
        padding: of the extra layers' strided convs; ``None``: the backbone's ``padding`` (MobileNet V1's
            ``tf_same`` for TF weights), ``symmetric`` for a backbone without one.
        resize, resize_method: :class:`~mnet_vision.heads.letterbox.LetterboxTransform` (``squash`` and
            ``bilinear``: torchvision's own).
        iou_thresh, positive_fraction: matching IoU and the 1:3 positive:negative ratio of the mining.
        image_mean, image_std: input normalisation of [0, 1] images; 0.5/0.5 maps to TF's [-1, 1].
    """

    def __init__(self, in_taps: Mapping[str, Tap], backbone: nn.Module, num_classes: int,
                 extra_depths: Sequence[int] = (512, 256, 256, 128), width_multiplier: float = 1.0,
                 min_depth: int = 16, size: int = 300, predictor_kernel: int = 1, min_scale: float = 0.2,
                 max_scale: float = 0.95, aspect_ratios: Sequence[float] = TF_ASPECT_RATIOS,
                 reduce_boxes_in_lowest_layer: bool = True, score_thresh: float = 0.01, nms_thresh: float = 0.6,
                 detections_per_img: int = 100, topk_candidates: int = 400, iou_thresh: float = 0.5,
                 positive_fraction: float = 0.25, image_mean: Sequence[float] = (0.5, 0.5, 0.5),
                 image_std: Sequence[float] = (0.5, 0.5, 0.5), interpolated_anchor: str = "last",
                 score_converter: str = "softmax", class_agnostic_nms: bool = False, padding: str | None = None,
                 resize: str = "squash", resize_method: str = "bilinear"):
        super().__init__()
        padding = getattr(backbone, "padding", "symmetric") if padding is None else padding
        if padding not in PADDINGS:
            raise ValueError(f"SSD300Head: unknown padding {padding!r}; choose one of {list(PADDINGS)}")
        if num_classes < 1:
            raise ValueError(f"SSD300Head: num_classes (object classes, background excluded) must be >= 1, "
                             f"got {num_classes}")
        if not in_taps:
            raise ValueError("SSD300Head needs at least one backbone tap")
        channels = [tap.channels for tap in in_taps.values()]
        extras = nn.ModuleList()
        for depth in extra_depths:
            out = scaled_depth(depth, width_multiplier, min_depth)
            extras.append(extra_layer(channels[-1], out, padding=padding))
            channels.append(out)
        anchors = SSDAnchorGenerator(len(channels), min_scale, max_scale, aspect_ratios, reduce_boxes_in_lowest_layer,
                                     interpolated_anchor)
        features = TapFeatures(backbone, list(in_taps), channels, extras)
        predictor = SSDBoxPredictor(channels, anchors.num_anchors_per_location(), num_classes + 1,
                                    predictor_kernel)
        self.num_classes = num_classes
        self.tap_strides = [tap.stride for tap in in_taps.values()]
        self.detector = TFPostprocessSSD(
            features, anchors, (size, size), num_classes + 1, image_mean=list(image_mean), image_std=list(image_std),
            head=predictor, score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
            iou_thresh=iou_thresh, topk_candidates=topk_candidates, positive_fraction=positive_fraction,
            score_converter=score_converter, class_agnostic_nms=class_agnostic_nms)
        self.detector.transform = LetterboxTransform(size, list(image_mean), list(image_std), resize, resize_method)

    @torch.no_grad()
    def anchors(self) -> Tensor:
        """The model's anchors for its ``size x size`` input, ``(A, 4)`` xyxy relative to the input
        (x by the width), in the order of the predictors' outputs."""
        size = self.detector.transform.size
        grids = [math.ceil(size / stride) for stride in self.tap_strides]
        for _ in self.detector.backbone.extras:  # each a stride-2 3x3 conv: ceil(n / 2), both paddings
            grids.append(math.ceil(grids[-1] / 2))
        maps = [torch.zeros(1, 1, g, g) for g in grids]  # only their sizes are read
        images = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
        return self.detector.anchor_generator(images, maps)[0] / size

    def check_tf_constants(self, constants: Mapping[str, Tensor], source: str, atol: float = 1e-5) -> None:
        """Check a TF export's graph constants (:data:`mnet_vision.tfjs.ssd_mobilenet_v1.CONSTANTS`)
        against this head's configuration: a file trained on another anchor layout, input size or
        input scaling loads without a shape error and gives wrong boxes, so each is an error naming
        the setting to change."""
        mean, std = self.detector.transform.image_mean, self.detector.transform.image_std
        if "input_size" in constants:
            size = [int(v) for v in constants["input_size"].reshape(-1)]
            if size != [self.detector.transform.size] * 2:
                raise ValueError(f"{source} was exported for {size} inputs; this head has size "
                                 f"{self.detector.transform.size} (task.input_size)")
        if "input_scale" in constants and "input_offset" in constants:
            # TF: x * scale - offset on 0..255 pixels; ours: (x / 255 - mean) / std
            tf_std, tf_mean = 1 / (255 * float(constants["input_scale"])), float(constants["input_offset"])
            tf_mean *= tf_std
            if any(abs(m - tf_mean) > 1e-4 for m in mean) or any(abs(s - tf_std) > 1e-4 for s in std):
                raise ValueError(f"{source} scales inputs as mean {tf_mean:.4f} / std {tf_std:.4f}; this head has "
                                 f"image_mean {list(mean)} / image_std {list(std)}")
        if "score_slice_begin" in constants and int(constants["score_slice_begin"].reshape(-1)[-1]) != 1:
            raise ValueError(f"{source}: its post-processor does not drop a background column at index 0")
        if "anchors" in constants:
            tf_anchors = torch.as_tensor(constants["anchors"]).reshape(-1, 4)[:, [1, 0, 3, 2]]  # yxyx -> xyxy
            ours = self.anchors().to(tf_anchors)
            if ours.shape != tf_anchors.shape:
                raise ValueError(f"{source} has {len(tf_anchors)} anchors, this head {len(ours)}: check size, "
                                 "taps, extra_depths and the anchor settings")
            diff = (ours - tf_anchors).abs().max().item()
            if diff > atol:
                raise ValueError(f"{source}: its anchors differ from this head's by up to {diff:.3g} (relative to the "
                                 "input): check aspect_ratios, min_scale, max_scale, interpolated_anchor "
                                 "(TF's 2017 models: second)")
