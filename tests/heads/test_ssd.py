"""SSD300 head: TF anchor layout, Table 13 figures, torchvision detector API, empty images."""
import math

import pytest
import torch
from torchvision.models.detection.image_list import ImageList

from mnet_vision.complexity import count_complexity
from mnet_vision.config import compose
from mnet_vision.heads import SSDAnchorGenerator
from mnet_vision.model import DetectorModel, build_model


def ssd(*overrides: str) -> DetectorModel:
    return build_model(compose(["task=ssd300", *overrides]))


def test_anchor_layout_is_tf_ssd_mobilenet_v1():
    gen = SSDAnchorGenerator()
    assert gen.num_anchors_per_location() == [3, 6, 6, 6, 6, 6]
    maps = [torch.zeros(1, 1, n, n) for n in (19, 10, 5, 3, 2, 1)]
    (anchors,) = gen(ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)]), maps)
    assert anchors.shape == (1917, 4)  # 19^2 * 3 + (10^2 + 5^2 + 3^2 + 2^2 + 1) * 6
    # lowest layer, first location (centre 0.5/19 of 300): (0.1, ar 1), (0.2, ar 2), (0.2, ar 1/2)
    c = 300 * 0.5 / 19
    w2, h2 = 0.2 * math.sqrt(2) * 300, 0.2 / math.sqrt(2) * 300
    expected = torch.tensor([[c - 15, c - 15, c + 15, c + 15],
                             [c - w2 / 2, c - h2 / 2, c + w2 / 2, c + h2 / 2],
                             [c - h2 / 2, c - w2 / 2, c + h2 / 2, c + w2 / 2]])
    torch.testing.assert_close(anchors[:3], expected)
    # last layer (1x1): scale 0.95 at ratios 1, 2, 1/2, 3, 1/3, then sqrt(0.95 * 1.0) at ratio 1
    last = anchors[-6:]
    sides = (last[:, 2:] - last[:, :2]) / 300
    s = 0.95
    expected_wh = torch.tensor([[s * math.sqrt(a), s / math.sqrt(a)] for a in (1.0, 2.0, 0.5, 3.0, 1 / 3)]
                               + [[math.sqrt(s), math.sqrt(s)]])
    torch.testing.assert_close(sides, expected_wh)
    torch.testing.assert_close((last[:, :2] + last[:, 2:]) / 2, torch.full((6, 2), 150.0))  # not clipped


def test_scales_are_linear_from_min_to_max():
    gen = SSDAnchorGenerator()
    assert gen.scales == pytest.approx([0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0])


def test_bad_anchor_settings_are_named():
    with pytest.raises(ValueError, match="min_scale"):
        SSDAnchorGenerator(min_scale=0.9, max_scale=0.2)


def test_table13_ssd300_params_and_mult_adds():
    """Paper: 6.8 M parameters, 1.2 B Mult-Adds (alpha 1, 300x300, 90 COCO classes + background).

    The count is 6.79 M (0.1 % off) and 1.237 B: 3.1 % above 1.2 but the printed figure has two
    digits, so anything in [1.15, 1.25) prints as 1.2; a hand count of the same layout also gets
    1.24 B (docs/complexity.md). Asserted: both figures round to the printed ones, params within 3 %.
    """
    model = ssd("backbone.alpha=1.0", "data.num_classes=90")
    result = count_complexity(model, 300)
    assert result.params / 1e6 == pytest.approx(6.8, rel=0.03)
    assert round(result.params / 1e6, 1) == 6.8
    assert round(result.mult_adds / 1e9, 1) == 1.2
    assert result.mult_adds / 1e9 == pytest.approx(1.237, abs=0.001)


def test_feature_maps_and_extra_depths_follow_alpha():
    model = ssd("backbone.alpha=0.5", "data.num_classes=3").eval()
    features = model.head.detector.backbone(torch.zeros(1, 3, 300, 300))
    assert [tuple(f.shape[1:]) for f in features.values()] == [
        (256, 19, 19), (512, 10, 10), (256, 5, 5), (128, 3, 3), (128, 2, 2), (64, 1, 1)]


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "mobilenet_v3_small"])
def test_torchvision_backbones_through_the_same_taps(backbone):
    model = ssd(f"backbone={backbone}", "backbone.alpha=0.35", "data.num_classes=3", "task.input_size=128").eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 100, 140)])
    assert out["boxes"].shape[1] == 4 and out["boxes"].shape[0] == out["scores"].shape[0] <= 100


def test_state_dict_holds_the_backbone_once():
    model = ssd("backbone.alpha=0.25", "data.num_classes=3")
    keys = list(model.state_dict())
    assert any(k.startswith("backbone.features.conv13") for k in keys)
    assert not any(".body." in k for k in keys)
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for k, v in model.state_dict().items()
                                                            if "running" not in k and "num_batches" not in k)


def test_training_losses_are_finite_with_and_without_boxes():
    model = ssd("backbone.alpha=0.25", "data.num_classes=3", "task.input_size=128").train()
    images = [torch.rand(3, 96, 120), torch.rand(3, 80, 80)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = model(images, targets)
    assert set(losses) == {"bbox_regression", "classification"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.features.conv1.pw.conv.weight.grad.abs().sum() > 0


def test_a_batch_without_any_box_trains_without_nan():
    model = ssd("backbone.alpha=0.25", "data.num_classes=3", "task.input_size=128").train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], [empty, empty])
    loss = sum(losses.values())
    loss.backward()
    assert torch.isfinite(loss) and loss == 0  # no positives and no mined negatives (TF, torchvision)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_eval_boxes_are_in_input_pixels():
    model = ssd("backbone.alpha=0.25", "data.num_classes=3", "task.input_size=128").eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 50, 200)])
    boxes = out["boxes"]
    assert len(boxes) > 0  # untrained: scores near 1/4 pass the 0.01 threshold
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 200).all() and (boxes[:, 3] <= 50).all()
    assert out["labels"].min() >= 1 and out["labels"].max() <= 3  # background never reported


def test_num_classes_counts_objects_only():
    with pytest.raises(Exception, match="num_classes .*got 0"):
        ssd("backbone.alpha=0.25", "data.num_classes=0")


def test_interpolated_anchor_second_follows_ratio_one():
    last, second = SSDAnchorGenerator(), SSDAnchorGenerator(interpolated_anchor="second")
    assert last.specs[0] == second.specs[0]  # the reduced lowest layer has no interpolated anchor
    s1, s2 = last.specs[1][0][0], last.specs[2][0][0]
    between = (math.sqrt(s1 * s2), 1.0)
    assert last.specs[1][-1] == between and second.specs[1][1] == between
    assert sorted(last.specs[1]) == sorted(second.specs[1])
    assert [ar for _, ar in second.specs[1]] == [1.0, 1.0, 2.0, 0.5, 3.0, 1 / 3]
    with pytest.raises(ValueError, match="aspect ratio 1"):
        SSDAnchorGenerator(aspect_ratios=(2.0, 0.5), interpolated_anchor="second")
    with pytest.raises(ValueError, match="interpolated_anchor"):
        SSDAnchorGenerator(interpolated_anchor="first")


def sigmoid_head(**kw) -> DetectorModel:
    return ssd("task.input_size=64", "backbone.alpha=0.25", "task.num_classes=1", "task.head.score_converter=sigmoid",
               "task.head.score_thresh=0.1", "task.head.nms_thresh=0.5", *[f"task.head.{k}={v}" for k, v in kw.items()])


def test_sigmoid_scores_skip_the_background_column_and_nms_precedes_clipping():
    model = sigmoid_head().eval()
    detector = model.head.detector
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    # three boxes: A inside the image; B the same size as A, shifted left past the border, so that
    # unclipped IoU(A, B) = 1/3 (kept) while clipped it would be 1/2 + (suppressed); C overlaps A fully
    boxes = torch.tensor([[20.0, 10.0, 40.0, 30.0], [0.0 - 10.0, 10.0, 30.0 - 10.0, 30.0], [20.0, 10.0, 40.0, 30.0]])
    deltas = detector.box_coder.encode_single(boxes, anchors)
    # logits: background column huge (a softmax would score every object ~0), object column decides
    logits = torch.tensor([[50.0, 2.0], [50.0, 1.0], [50.0, 0.5]])
    (out,) = detector.postprocess_detections({"bbox_regression": deltas[None], "cls_logits": logits[None]},
                                             [anchors], [(64, 64)])
    torch.testing.assert_close(out["scores"], torch.sigmoid(torch.tensor([2.0, 1.0])))
    assert out["labels"].tolist() == [1, 1]
    torch.testing.assert_close(out["boxes"], torch.tensor([[20.0, 10.0, 40.0, 30.0], [0.0, 10.0, 20.0, 30.0]]),
                               atol=1e-4, rtol=0)  # B clipped after NMS


def test_softmax_default_is_torchvisions_postprocess():
    model = ssd("task.input_size=64", "backbone.alpha=0.25", "task.num_classes=2").eval()
    detector = model.head.detector
    assert detector.score_converter == "softmax"
    torch.manual_seed(0)
    head_outputs = {"bbox_regression": torch.randn(1, 5, 4), "cls_logits": torch.randn(1, 5, 3) * 3}
    anchors = [torch.rand(5, 4).sort(dim=1).values * 64]
    ours = detector.postprocess_detections(head_outputs, anchors, [(64, 64)])
    theirs = super(type(detector), detector).postprocess_detections(head_outputs, anchors, [(64, 64)])
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(ours[0][key], theirs[0][key])


def test_tf_options_are_named_when_wrong():
    with pytest.raises(Exception, match="score_converter"):
        sigmoid_head(score_converter="softplus")
    with pytest.raises(Exception, match="padding"):
        sigmoid_head(padding="reflect")
    with pytest.raises(Exception, match="resize"):
        sigmoid_head(resize="crop")


def test_extra_layers_follow_the_backbone_padding():
    from mnet_vision.backbones.mobilenet_v1 import TFSameConv2d

    tf = ssd("task.input_size=64", "backbone.alpha=0.25", "backbone.padding=tf_same")
    extras = tf.head.detector.backbone.extras.modules()
    strided = [m for m in extras if isinstance(m, torch.nn.Conv2d) and m.stride[0] > 1]
    assert strided and all(isinstance(m, TFSameConv2d) for m in strided)
    plain = ssd("task.input_size=64", "backbone.alpha=0.25")
    assert not any(isinstance(m, TFSameConv2d) for m in plain.modules())


def test_check_tf_constants_names_what_differs():
    model = sigmoid_head(interpolated_anchor="second", aspect_ratios="[1.0,2.0,0.5,3.0,0.3333]")
    anchors = model.head.anchors()
    good = {"anchors": anchors[:, [1, 0, 3, 2]].numpy()[None], "input_size": torch.tensor([64, 64]).numpy(),
            "input_scale": torch.tensor(2 / 255).numpy(), "input_offset": torch.tensor(1.0).numpy()}
    model.head.check_tf_constants(good, "file.json")
    other_order = sigmoid_head(aspect_ratios="[1.0,2.0,0.5,3.0,0.3333]")  # interpolated anchor last
    with pytest.raises(ValueError, match="interpolated_anchor"):
        other_order.head.check_tf_constants(good, "file.json")
    with pytest.raises(ValueError, match="exported for \\[512, 512\\]"):
        model.head.check_tf_constants({**good, "input_size": torch.tensor([512, 512]).numpy()}, "file.json")
    with pytest.raises(ValueError, match="image_mean"):
        model.head.check_tf_constants({**good, "input_scale": torch.tensor(1 / 255).numpy()}, "file.json")
