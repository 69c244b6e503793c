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
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD, SSDScoringHead

from mnet_vision.backbones.mobilenet_v1 import ConvBNAct, scaled_depth
from mnet_vision.backbones.taps import Tap
from mnet_vision.heads.detector import DetectorHead, TapFeatures

TF_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


class SSDAnchorGenerator(DefaultBoxGenerator):
    """TF's ``ssd_anchor_generator`` (``create_ssd_anchors``) as a torchvision ``DefaultBoxGenerator``.

    Layer ``k`` of ``num_layers`` has scale ``s_k = min_scale + (max_scale - min_scale) k / (n - 1)``
    and one anchor per aspect ratio ``ar`` (width ``s_k sqrt(ar)``, height ``s_k / sqrt(ar)``, relative
    to the image) plus one of ratio 1 at ``sqrt(s_k s_{k+1})`` (``s_n = 1``). With
    ``reduce_boxes_in_lowest_layer`` (TF's default) layer 0 has only (0.1, 1), (s_0, 2), (s_0, 1/2).
    Centres sit at ``(i + 0.5) / grid``; boxes are not clipped (TF does not clip them either).
    """

    def __init__(self, num_layers: int = 6, min_scale: float = 0.2, max_scale: float = 0.95,
                 aspect_ratios: Sequence[float] = TF_ASPECT_RATIOS, reduce_boxes_in_lowest_layer: bool = True):
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
                specs.append([(scales[k], float(ar)) for ar in aspect_ratios]
                             + [(math.sqrt(scales[k] * scales[k + 1]), 1.0)])
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


def extra_layer(in_ch: int, depth: int, activation: type[nn.Module] = nn.ReLU6) -> nn.Sequential:
    """TF ``multi_resolution_feature_maps`` with ``insert_1x1_conv``: 1x1 to ``depth / 2``, then 3x3
    stride 2 to ``depth``, each with BatchNorm and ReLU6."""
    kw = dict(activation=activation, bn_eps=1e-3, bn_momentum=0.03)  # TF: BN eps 1e-3, decay 0.97-0.9997
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
        min_scale, max_scale, aspect_ratios, reduce_boxes_in_lowest_layer: :class:`SSDAnchorGenerator`.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: post-processing (TF: NMS IoU
            0.6, 100 detections; COCO scores at most 100 per image).
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
                 image_std: Sequence[float] = (0.5, 0.5, 0.5)):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"SSD300Head: num_classes (object classes, background excluded) must be >= 1, "
                             f"got {num_classes}")
        if not in_taps:
            raise ValueError("SSD300Head needs at least one backbone tap")
        channels = [tap.channels for tap in in_taps.values()]
        extras = nn.ModuleList()
        for depth in extra_depths:
            out = scaled_depth(depth, width_multiplier, min_depth)
            extras.append(extra_layer(channels[-1], out))
            channels.append(out)
        anchors = SSDAnchorGenerator(len(channels), min_scale, max_scale, aspect_ratios, reduce_boxes_in_lowest_layer)
        features = TapFeatures(backbone, list(in_taps), channels, extras)
        predictor = SSDBoxPredictor(channels, anchors.num_anchors_per_location(), num_classes + 1,
                                    predictor_kernel)
        self.num_classes = num_classes
        self.detector = SSD(features, anchors, (size, size), num_classes + 1, image_mean=list(image_mean),
                            image_std=list(image_std), head=predictor, score_thresh=score_thresh, nms_thresh=nms_thresh,
                            detections_per_img=detections_per_img, iou_thresh=iou_thresh,
                            topk_candidates=topk_candidates, positive_fraction=positive_fraction)
