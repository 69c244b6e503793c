"""Faster-RCNN on one MobileNet tap, laid out as the TF Object Detection API's
``faster_rcnn_mobilenet_v1`` feature extractor and counted as the MobileNets paper counts it.

torchvision's ``FasterRCNN`` supplies the machinery (transform, RPN with its anchor matching,
sampling, losses and NMS, RoIAlign, box sampling, losses and per-class NMS); this module supplies
what the paper's model defines and torchvision's defaults lack:

- the RPN sits on one stride-16 tap (``conv11``, 512 channels at alpha 1) with 12 anchors per
  location (sizes 64-512 x ratios 1:2, 1:1, 2:1; TF's ``grid_anchor_generator``);
- RoIAlign crops 14x14 and the box head is the backbone's own stages after that tap (``conv12``,
  stride 2, so 7x7, and ``conv13``), then global average pooling, then one FC pair
  (``FastRCNNPredictor``) instead of torchvision's ``TwoMLPHead`` (26.7 M parameters alone);
- 300 proposals per image, square 300 or 600 inputs in [-1, 1].

With alpha 1.0 and 91 classes it counts 6.1 M parameters and 25.2 B / 30.5 B Mult-Adds at 300 / 600
(Table 13), the box head running 300 times (see :meth:`FasterRCNNHead.complexity_mode`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FasterRCNN, FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from mnet_vision.backbones.taps import Tap
from mnet_vision.heads.detector import DetectorHead, TapFeatures, hold


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that always normalises with its running statistics and never learns.

    TF's Faster-RCNN keeps BN frozen (``batch_norm_trainable: false``) and torchvision freezes it in
    pretrained detection backbones; with 1-2 images per step the batch statistics of a detector are
    too noisy to train on. Unlike ``torchvision.ops.FrozenBatchNorm2d`` this stays a
    ``nn.BatchNorm2d`` with the same state-dict keys (``num_batches_tracked`` included), so an
    ImageNet checkpoint loads into a frozen model strictly and BN folding still finds it.
    """

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)  # eval statistics whatever mode the model is put in


def freeze_batchnorm(module: nn.Module) -> int:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` that tracks running statistics (in place)
    by a :class:`FrozenBatchNorm2d` with the same statistics and affine parameters, the latter no
    longer trainable. Modules holding ``module``'s layers see the change: the BN is swapped inside
    its parent layer, not the layer itself. Returns how many were replaced."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            # without running statistics there is nothing to freeze to
            if type(child) is nn.BatchNorm2d and child.track_running_stats:
                frozen = FrozenBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                           device=child.running_mean.device, dtype=child.running_mean.dtype)
                frozen.load_state_dict(child.state_dict())
                frozen.requires_grad_(False).eval()
                setattr(parent, name, frozen)
                count += 1
    return count


class BackboneStagesBoxHead(nn.Module):
    """Second stage of the paper's Faster-RCNN: the backbone's stages after the RPN tap, run on
    each RoI crop, then global average pooling.

    ``forward(crops (K, C_tap, 14, 14)) -> (K, out_channels)``. The stages are the backbone's own
    modules (so ImageNet weights of ``conv12``/``conv13`` are used), held here without being
    registered (:func:`mnet_vision.heads.detector.hold`): the model already owns them as
    ``backbone.features.*``, and registering them again would store and count their parameters
    twice. The backbone's forward stops at the RPN tap, so these stages run only here, once per RoI.
    """

    def __init__(self, stages: Sequence[nn.Module], out_channels: int):
        super().__init__()
        if not stages:
            raise ValueError("BackboneStagesBoxHead needs at least one backbone stage")
        hold(self, "stages", nn.Sequential(*stages))
        self.out_channels = out_channels

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.stages(crops).mean(dim=(2, 3))


class FasterRCNNHead(DetectorHead):
    """Faster-RCNN whose RPN reads one backbone tap and whose box head is the backbone's later stages.

    Args:
        in_taps: exactly one tap (normally ``conv11``, stride 16): the RPN's feature map and the
            map RoIs are cropped from.
        backbone: the model's backbone (held, not owned; see :mod:`mnet_vision.heads.detector`); it
            must have ``stages_after(tap)`` and ``tap_info["conv13"]`` (its final map).
        num_classes: object classes; the head adds the background class (label 0), so COCO's 80
            categories give 81 outputs (the paper and TF count 90 + 1 = 91).
        size: the square side (pixels) every image is resized (squashed) to; 300 or 600 in the paper.
            Nothing is padded (``size_divisible=1``), so the RPN map is ``ceil(size / 16)`` square.
        anchor_sizes, aspect_ratios: anchor sides (pixels of the resized image) and height/width
            ratios on the one feature map; TF's 0.25-2 x 256 and {0.5, 1, 2} give 12 anchors.
        roi_output_size, sampling_ratio: RoIAlign crop side (14, no max-pool: the stride-2 stage
            after the tap halves it, as the paper's Mult-Adds imply) and its sampling points per bin.
        proposals_train, proposals_test: RPN proposals kept per image after NMS (TF
            ``first_stage_max_proposals`` 300; the paper evaluates 300).
        pre_nms_top_n_train, pre_nms_top_n_test: highest-scoring anchors per image entering the
            RPN's NMS (torchvision's 2000 / 1000; TF runs NMS over all anchors).
        rpn_nms_thresh, rpn_fg_iou_thresh, rpn_bg_iou_thresh, rpn_batch_size_per_image,
            rpn_positive_fraction, rpn_score_thresh: torchvision's RPN settings (TF: NMS 0.7,
            minibatch 256, half positives).
        box_batch_size_per_image, box_positive_fraction, box_fg_iou_thresh, box_bg_iou_thresh:
            second-stage sampling (TF ``second_stage_batch_size`` 64, a quarter positives).
        box_score_thresh, box_nms_thresh, detections_per_img: post-processing (TF: NMS IoU 0.6,
            at most 100 detections, which is also what COCO scores).
        bbox_reg_weights: box coder weights of the second stage (None: torchvision's 10, 10, 5, 5).
        image_mean, image_std: input normalisation of [0, 1] images; 0.5/0.5 maps to TF's [-1, 1].
        frozen_bn: replace every BatchNorm of the backbone by :class:`FrozenBatchNorm2d` (running
            statistics, fixed affine parameters), as TF (``batch_norm_trainable: false``) and
            torchvision's pretrained detectors do. Use it when the backbone starts from ImageNet
            weights: freezing a freshly initialised backbone's BN leaves it unnormalised. The
            state-dict keys do not change, so ``init_from`` loads either way.
    """

    def __init__(self, in_taps: Mapping[str, Tap], backbone: nn.Module, num_classes: int, size: int = 300,
                 anchor_sizes: Sequence[int] = (64, 128, 256, 512),
                 aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), roi_output_size: int = 14,
                 sampling_ratio: int = 2, proposals_train: int = 300, proposals_test: int = 300,
                 pre_nms_top_n_train: int = 2000, pre_nms_top_n_test: int = 1000, rpn_nms_thresh: float = 0.7,
                 rpn_fg_iou_thresh: float = 0.7, rpn_bg_iou_thresh: float = 0.3,
                 rpn_batch_size_per_image: int = 256, rpn_positive_fraction: float = 0.5,
                 rpn_score_thresh: float = 0.0, box_batch_size_per_image: int = 64,
                 box_positive_fraction: float = 0.25, box_fg_iou_thresh: float = 0.5,
                 box_bg_iou_thresh: float = 0.5, box_score_thresh: float = 0.05, box_nms_thresh: float = 0.6,
                 detections_per_img: int = 100, bbox_reg_weights: Sequence[float] | None = None,
                 image_mean: Sequence[float] = (0.5, 0.5, 0.5), image_std: Sequence[float] = (0.5, 0.5, 0.5),
                 frozen_bn: bool = False):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"FasterRCNNHead: num_classes (object classes, background excluded) must be >= 1, "
                             f"got {num_classes}")
        if len(in_taps) != 1:
            raise ValueError(f"FasterRCNNHead needs exactly one backbone tap (the RPN's, normally conv11), "
                             f"got {list(in_taps)}")
        if size < 1:
            raise ValueError(f"FasterRCNNHead: size must be a positive number of pixels, got {size}")
        if proposals_train < 1 or proposals_test < 1:
            raise ValueError(f"FasterRCNNHead: proposals_train/proposals_test must be >= 1, "
                             f"got {proposals_train}/{proposals_test}")
        if not hasattr(backbone, "stages_after"):
            raise TypeError(f"FasterRCNNHead: the backbone ({type(backbone).__name__}) has no stages_after(tap), "
                            f"which the box head is built from")
        (tap, info), = in_taps.items()
        stages = backbone.stages_after(tap)  # raises if the tap is the last stage
        if frozen_bn:
            freeze_batchnorm(backbone)  # conv12/conv13 included: TF freezes the whole feature extractor
        box_head = BackboneStagesBoxHead(stages, backbone.tap_info["conv13"].channels)
        anchors = AnchorGenerator(sizes=(tuple(int(s) for s in anchor_sizes),),
                                  aspect_ratios=(tuple(float(r) for r in aspect_ratios),))
        self.num_classes, self.tap, self.size, self.proposals_test = num_classes, tap, size, proposals_test
        self.frozen_bn = frozen_bn
        self.detector = FasterRCNN(
            TapFeatures(backbone, [tap], info.channels),
            num_classes=None,  # set by the predictor: num_classes + background
            min_size=size, max_size=size, fixed_size=(size, size), size_divisible=1,
            image_mean=list(image_mean), image_std=list(image_std),
            rpn_anchor_generator=anchors,  # RPNHead defaults to a 3x3 conv at the tap's depth, 12 anchors
            rpn_pre_nms_top_n_train=pre_nms_top_n_train, rpn_pre_nms_top_n_test=pre_nms_top_n_test,
            rpn_post_nms_top_n_train=proposals_train, rpn_post_nms_top_n_test=proposals_test,
            rpn_nms_thresh=rpn_nms_thresh, rpn_fg_iou_thresh=rpn_fg_iou_thresh,
            rpn_bg_iou_thresh=rpn_bg_iou_thresh, rpn_batch_size_per_image=rpn_batch_size_per_image,
            rpn_positive_fraction=rpn_positive_fraction, rpn_score_thresh=rpn_score_thresh,
            box_roi_pool=MultiScaleRoIAlign(["0"], roi_output_size, sampling_ratio),
            box_head=box_head,
            box_predictor=FastRCNNPredictor(box_head.out_channels, num_classes + 1),
            box_score_thresh=box_score_thresh, box_nms_thresh=box_nms_thresh,
            box_detections_per_img=detections_per_img, box_fg_iou_thresh=box_fg_iou_thresh,
            box_bg_iou_thresh=box_bg_iou_thresh, box_batch_size_per_image=box_batch_size_per_image,
            box_positive_fraction=box_positive_fraction,
            bbox_reg_weights=tuple(bbox_reg_weights) if bbox_reg_weights is not None else None)

    @contextlib.contextmanager
    def complexity_mode(self) -> Iterator[None]:
        """Make the RPN pass exactly ``proposals_test`` proposals per image to the box head, whatever
        their scores (no NMS, no score threshold), so one eval forward pass costs what the paper
        counts ("evaluates 300 RPN proposal boxes per image"). Every setting is restored on exit.

        With NMS on, the count would depend on the (random or trained) objectness scores; the box
        head is about 93 % of the Mult-Adds at 300x300, so the total would be unreproducible.
        """
        rpn = self.detector.rpn
        saved = (rpn.nms_thresh, rpn.score_thresh, dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n))
        try:
            rpn.nms_thresh = 1.0  # torchvision suppresses IoU > threshold: nothing, even identical boxes
            rpn.score_thresh = 0.0
            rpn._pre_nms_top_n = {**rpn._pre_nms_top_n,
                                  "testing": max(rpn._pre_nms_top_n["testing"], self.proposals_test)}
            rpn._post_nms_top_n = {**rpn._post_nms_top_n, "testing": self.proposals_test}
            yield
        finally:
            rpn.nms_thresh, rpn.score_thresh, rpn._pre_nms_top_n, rpn._post_nms_top_n = saved
