"""Faster-RCNN head: Table 13 figures, 300 proposals while counting, the backbone's own conv12/conv13
as box head (stored once), training and eval through torchvision's API, V2/V3 backbones, frozen BN."""
import pytest
import torch
from torch import nn

from mnet_vision.backbones import MobileNetV1, TorchvisionMobileNet
from mnet_vision.checkpoints import load_matching
from mnet_vision.complexity import count_complexity
from mnet_vision.config import compose
from mnet_vision.heads import BackboneStagesBoxHead, FasterRCNNHead
from mnet_vision.heads.faster_rcnn import FrozenBatchNorm2d
from mnet_vision.model import DetectorModel, build_model

SMALL = ("backbone.alpha=0.25", "data.num_classes=3", "task.input_size=128")


def frcnn(*overrides: str, task: str = "faster_rcnn_300") -> DetectorModel:
    return build_model(compose([f"task={task}", *overrides]))


def targets_one_with_one_without_boxes() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Two images of different sizes; the second is background only (boxes of shape (0, 4))."""
    images = [torch.rand(3, 120, 160), torch.rand(3, 90, 70)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 80.0, 100.0], [50.0, 5.0, 150.0, 60.0]]),
                "labels": torch.tensor([1, 3])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    return images, targets


# ---------------------------------------------------------------------------------------------
# Table 13
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task, mult_adds", [("faster_rcnn_300", 25.2), ("faster_rcnn_600", 30.5)])
def test_table13_params_and_mult_adds(task, mult_adds):
    """Paper: 6.1 M parameters, 25.2 B (300) and 30.5 B (600) Mult-Adds at alpha 1 with 90 COCO
    classes + background, 300 proposals. Measured: 6.04 M, 25.22 B and 30.49 B (a hand count
    of the layout gets 6.06 M with BN's affine parameters, 25.22 B and 30.48 B)."""
    cfg = compose([f"task={task}", "backbone.alpha=1.0", "data.num_classes=90"])
    model = build_model(cfg)
    assert model.head.detector.roi_heads.box_predictor.cls_score.out_features == 91
    result = count_complexity(model, cfg.task.input_size)
    assert result.params / 1e6 == pytest.approx(6.1, rel=0.03)
    assert result.mult_adds / 1e9 == pytest.approx(mult_adds, rel=0.03)
    assert round(result.mult_adds / 1e9, 1) == mult_adds


def test_complexity_mode_sends_exactly_300_rois_and_restores_the_rpn():
    # a score threshold no untrained proposal reaches: outside complexity mode nothing gets through
    model = frcnn("backbone.alpha=0.25", "data.num_classes=3", "task.head.rpn_score_thresh=0.9").eval()
    rpn = model.head.detector.rpn
    before = (rpn.nms_thresh, rpn.score_thresh, dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n))
    rois: list[int] = []
    handle = model.backbone.features.conv12.register_forward_hook(lambda m, i, o: rois.append(o.shape[0]))
    try:
        count_complexity(model, 300)
        assert rois == [300]
        rois.clear()
        with torch.no_grad():
            model([torch.rand(3, 300, 300)])
            with model.head.complexity_mode():
                model([torch.rand(3, 300, 300)])
        assert rois[0] < 300 and rois[1] == 300
    finally:
        handle.remove()
    assert (rpn.nms_thresh, rpn.score_thresh, dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n)) == before
    assert before[:2] == (0.7, 0.9) and before[3] == {"training": 300, "testing": 300}


def test_complexity_mode_restores_the_rpn_after_an_error():
    head = frcnn(*SMALL).head
    rpn = head.detector.rpn
    before = (rpn.nms_thresh, rpn.score_thresh, dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n))
    with pytest.raises(RuntimeError, match="boom"):
        with head.complexity_mode():
            assert rpn.nms_thresh == 1.0 and rpn.score_thresh == 0.0
            raise RuntimeError("boom")
    assert (rpn.nms_thresh, rpn.score_thresh, dict(rpn._pre_nms_top_n), dict(rpn._post_nms_top_n)) == before


def test_complexity_mode_raises_a_small_pre_nms_top_n():
    head = frcnn(*SMALL, "task.head.pre_nms_top_n_test=100").eval().head
    with head.complexity_mode():
        assert head.detector.rpn.pre_nms_top_n() == 300  # eval mode: the testing value
    assert head.detector.rpn._pre_nms_top_n["testing"] == 100


# ---------------------------------------------------------------------------------------------
# Layout: the backbone's own conv12/conv13 as box head, stored once
# ---------------------------------------------------------------------------------------------

def test_layout_follows_the_paper():
    model = frcnn("backbone.alpha=0.5", "data.num_classes=3")
    det = model.head.detector
    assert list(model.backbone.out_taps) == ["conv11"]
    assert det.backbone.out_channels == 256
    assert det.rpn.anchor_generator.num_anchors_per_location() == [12]
    assert det.rpn.head.conv[0][0].in_channels == det.rpn.head.conv[0][0].out_channels == 256  # 3x3 at tap depth
    assert det.roi_heads.box_roi_pool.output_size == (14, 14)
    box_head = det.roi_heads.box_head
    assert isinstance(box_head, BackboneStagesBoxHead) and box_head.out_channels == 512
    assert list(box_head.stages) == [model.backbone.features.conv12, model.backbone.features.conv13]
    assert det.roi_heads.box_predictor.cls_score.in_features == 512
    assert det.roi_heads.box_predictor.cls_score.out_features == 4
    assert det.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    assert det.roi_heads.nms_thresh == 0.6 and det.roi_heads.detections_per_img == 100
    transform = det.transform
    assert (transform.min_size, transform.max_size, transform.fixed_size) == ((300,), 300, (300, 300))
    assert transform.size_divisible == 1 and transform.image_mean == [0.5] * 3


def test_rois_are_14x14_crops_that_conv12_halves():
    model = frcnn(*SMALL).eval()
    shapes: list[tuple] = []
    model.backbone.features.conv12.register_forward_hook(lambda m, i, o: shapes.append((i[0].shape, o.shape)))
    with torch.no_grad():
        model([torch.rand(3, 128, 128)])
    ((crops, out),) = shapes
    assert tuple(crops[1:]) == (128, 14, 14) and tuple(out[1:]) == (256, 7, 7)


def test_state_dict_holds_conv12_and_conv13_once():
    model = frcnn(*SMALL)
    state = model.state_dict()
    outside = [k for k in state if not k.startswith("backbone.")]
    assert not [k for k in outside if "conv12" in k or "conv13" in k or "stages" in k]
    assert all(k.startswith("head.detector.") for k in outside)
    pointers = [t.data_ptr() for t in state.values() if t.numel()]
    assert len(pointers) == len(set(pointers))  # no tensor under two keys
    params = list(model.parameters())
    assert len({id(p) for p in params}) == len(params)
    assert "backbone.features.conv13.pw.conv.weight" in state


def test_classification_backbone_weights_load_and_feed_the_box_head():
    model = frcnn(*SMALL)
    classifier = build_model(compose(["experiment=imagenet", "backbone.alpha=0.25"]))
    load_matching(model.backbone, classifier.backbone.state_dict(), "classification backbone")
    also = MobileNetV1(alpha=0.25)  # a bare backbone's state dict fits too
    model.backbone.load_state_dict(also.state_dict())
    stages = model.head.detector.roi_heads.box_head.stages
    torch.testing.assert_close(stages[0].pw.conv.weight, also.features.conv12.pw.conv.weight)
    torch.testing.assert_close(stages[1].dw.conv.weight, also.features.conv13.dw.conv.weight)


# ---------------------------------------------------------------------------------------------
# Training and eval through torchvision's detector API
# ---------------------------------------------------------------------------------------------

def test_training_step_with_and_without_boxes():
    model = frcnn(*SMALL).train()
    images, targets = targets_one_with_one_without_boxes()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("backbone.features.conv12.pw.conv.weight", "backbone.features.conv13.dw.conv.weight",
                 "backbone.features.conv0.conv.weight", "head.detector.rpn.head.conv.0.0.weight",
                 "head.detector.roi_heads.box_predictor.bbox_pred.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_eval_returns_boxes_inside_each_image():
    model = frcnn(*SMALL, "task.head.box_score_thresh=0.0").eval()
    images = [torch.rand(3, 120, 160), torch.rand(3, 90, 70)]
    with torch.no_grad():
        outputs = model(images)
    for image, out in zip(images, outputs):
        h, w = image.shape[1:]
        boxes = out["boxes"]
        assert 0 < boxes.shape[0] <= 100 == model.head.detector.roi_heads.detections_per_img
        assert out["labels"].shape == out["scores"].shape == (boxes.shape[0],)
        assert ((out["labels"] >= 1) & (out["labels"] <= 3)).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


@pytest.mark.parametrize("backbone, alpha", [("mobilenet_v2", 0.35), ("mobilenet_v3_small", 0.5)])
def test_torchvision_backbones_train_through_stages_after(backbone, alpha):
    model = frcnn(f"backbone={backbone}", f"backbone.alpha={alpha}", "data.num_classes=3", "task.input_size=128")
    body = model.backbone
    # conv11 is the last stride-16 stage
    stage = max(i for i in range(len(body.features)) if body.tap_info[f"features.{i}"].stride == 16)
    box_head = model.head.detector.roi_heads.box_head
    assert list(box_head.stages) == list(body.features[stage + 1:])
    assert model.head.detector.roi_heads.box_predictor.cls_score.in_features == body.tap_info["conv13"].channels
    images, targets = targets_one_with_one_without_boxes()
    losses = model.train()(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert body.features[-1][0].weight.grad.abs().sum() > 0  # the last stage runs on the RoIs


# ---------------------------------------------------------------------------------------------
# stages_after and bad settings
# ---------------------------------------------------------------------------------------------

def test_stages_after_on_mobilenet_v1():
    net = MobileNetV1(alpha=0.25, taps=["conv11"])
    assert net.stages_after("conv11") == [net.features.conv12, net.features.conv13]
    assert net.stages_after("conv0")[0] is net.features.conv1 and len(net.stages_after("conv0")) == 13
    with pytest.raises(ValueError, match="'conv13' is the last stage"):
        net.stages_after("conv13")
    with pytest.raises(ValueError, match="unknown tap 'conv14'"):
        net.stages_after("conv14")


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small"])
def test_stages_after_on_torchvision_mobilenets(arch):
    net = TorchvisionMobileNet(arch, 0.5, taps=["conv11"])
    n = len(net.features)
    after = net.stages_after("conv11")
    assert after and all(a is b for a, b in zip(after, net.features[n - len(after):]))
    assert net.stages_after("features.0") == list(net.features[1:])
    for last in ("conv13", f"features.{n - 1}"):
        with pytest.raises(ValueError, match="is the last stage"):
            net.stages_after(last)
    with pytest.raises(ValueError, match="unknown tap"):
        net.stages_after("conv12")


def test_last_tap_cannot_feed_a_box_head():
    with pytest.raises(Exception, match="'conv13' is the last stage"):  # Hydra wraps the ValueError
        frcnn(*SMALL, "task.head.taps=[conv13]")


def test_needs_exactly_one_tap_and_a_class():
    with pytest.raises(Exception, match="exactly one backbone tap"):
        frcnn(*SMALL, "task.head.taps=[conv5,conv11]")
    backbone = MobileNetV1(alpha=0.25, taps=["conv11"])
    with pytest.raises(ValueError, match="num_classes"):
        FasterRCNNHead(backbone.out_taps, backbone, num_classes=0)


# ---------------------------------------------------------------------------------------------
# Frozen BatchNorm (TF batch_norm_trainable: false)
# ---------------------------------------------------------------------------------------------

def test_frozen_bn_keeps_statistics_and_state_dict_keys():
    plain = frcnn(*SMALL)
    model = frcnn(*SMALL, "task.head.frozen_bn=true").train()
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(isinstance(m, FrozenBatchNorm2d) and not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    assert list(model.state_dict()) == list(plain.state_dict())
    load_matching(model.backbone, MobileNetV1(alpha=0.25).state_dict(), "ImageNet backbone")
    conv13_bn = model.head.detector.roi_heads.box_head.stages[1].pw.bn
    assert conv13_bn is model.backbone.features.conv13.pw.bn and isinstance(conv13_bn, FrozenBatchNorm2d)
    running = conv13_bn.running_mean.clone()
    images, targets = targets_one_with_one_without_boxes()
    sum(model(images, targets).values()).backward()
    torch.testing.assert_close(conv13_bn.running_mean, running)
    assert conv13_bn.weight.grad is None


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------

def test_configs():
    cfg300, cfg600 = compose(["task=faster_rcnn_300"]), compose(["task=faster_rcnn_600"])
    for cfg in (cfg300, cfg600):
        assert cfg.task.augment == "flip" and cfg.data.augment == "flip"
        assert cfg.task.head._target_ == "mnet_vision.heads.FasterRCNNHead" and list(cfg.task.head.taps) == ["conv11"]
        assert cfg.task.module.weight_decay == 1e-4 and cfg.task.module.optimizer.lr == 0.02
    assert (cfg300.task.name, cfg300.task.head.size) == ("faster_rcnn_300", 300)
    assert (cfg600.task.name, cfg600.task.head.size) == ("faster_rcnn_600", 600)
