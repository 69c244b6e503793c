"""deploy.postprocess against the torchvision / mnet_vision code it ports: box decoding, NMS (tie
order and threshold edges included), SSD post-processing on both score converters, boxes back to
the original image."""
import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import nms as tv_nms

from mnet_vision.config import compose
from mnet_vision.deploy.postprocess import batched_nms, decode_boxes, nms, ssd_detections, to_original
from mnet_vision.heads.letterbox import LetterboxTransform
from mnet_vision.model import build_model


def _boxes(rng, n, extent=100.0, size=30.0):
    xy = rng.random((n, 2), dtype=np.float32) * extent
    wh = rng.random((n, 2), dtype=np.float32) * size
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("thresh", [0.3, 0.5, 0.6, 0.7])
def test_nms_is_torchvisions_on_random_boxes(seed, thresh):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, 300)
    scores = rng.random(300, dtype=np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, thresh),
                                  tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), thresh).numpy())


def test_nms_ties_duplicates_and_empty_boxes_keep_torchvisions_order():
    rng = np.random.default_rng(7)
    boxes = _boxes(rng, 200, extent=20.0)
    boxes[50:60] = boxes[0]  # identical boxes
    boxes[60:65, 2:] = boxes[60:65, :2]  # zero-area boxes: IoU 0 / 0
    scores = rng.integers(0, 5, 200).astype(np.float32) / 4  # many equal scores
    for thresh in (0.0, 0.4, 1.0):
        np.testing.assert_array_equal(nms(boxes, scores, thresh),
                                      tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), thresh).numpy())


def test_iou_at_the_threshold_compares_as_torchvision_does():
    # IoU exactly 0.5 is not above 0.5: kept; and IoUs a float32 ulp either side of 0.6 (float32(0.6) is
    # above 0.6: the comparison is in double, as torchvision's kernel makes it)
    rng = np.random.default_rng(3)
    base = np.array([[0, 0, 4, 1], [0, 0, 2, 1]], np.float32)
    np.testing.assert_array_equal(nms(base, np.array([1, 0.5], np.float32), 0.5), [0, 1])
    widths = (np.float32(0.6) * 10 + rng.integers(-20, 20, 400) * 1e-6).astype(np.float32)
    boxes = np.zeros((401, 4), np.float32)
    boxes[0] = [0, 0, 10, 1]
    boxes[1:, 2], boxes[1:, 3] = widths, 1
    scores = np.linspace(1, 0, 401, dtype=np.float32)
    for i in range(1, 401):
        pair, s = boxes[[0, i]], scores[[0, i]]
        np.testing.assert_array_equal(nms(pair, s, 0.6), tv_nms(torch.from_numpy(pair), torch.from_numpy(s), 0.6))


@pytest.mark.parametrize("n", [50, 999, 1001, 2500])  # both of torchvision's CPU strategies (> 1000 boxes: per class)
@pytest.mark.parametrize("tied", [False, True])
def test_batched_nms_is_torchvisions(n, tied):
    rng = np.random.default_rng(n)
    boxes = _boxes(rng, n, extent=60.0)
    scores = rng.integers(0, 50, n).astype(np.float32) / 49 if tied else rng.random(n, dtype=np.float32)
    groups = rng.integers(0, 4, n)
    for thresh in (0.45, 0.6):
        ours = batched_nms(boxes, scores, groups, thresh)
        theirs = tv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(groups),
                                thresh).numpy()
        if tied and n > 1000:
            # above 1000 boxes torchvision orders the kept boxes by an unstable sort: among equal scores its
            # order is the sort's own (ours: by index); the boxes kept and the order of scores are the same
            assert sorted(ours) == sorted(theirs)
            np.testing.assert_array_equal(scores[ours], scores[theirs])
        else:
            np.testing.assert_array_equal(ours, theirs)


def test_nms_of_nothing_and_bad_shapes():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match=r"nms expects \(N, 4\) boxes and \(N,\) scores"):
        nms(np.zeros((3, 4)), np.zeros(2), 0.5)


def _detector(*overrides):
    model = build_model(compose(["task=ssd300", "task.input_size=64", "backbone.alpha=0.25", "task.num_classes=3",
                                 *overrides])).eval()
    return model.head.detector


def test_decode_is_the_box_coders_with_its_clamp():
    detector = _detector()
    rng = np.random.default_rng(0)
    anchors = _boxes(rng, 500, 64.0, 40.0) + np.float32(0.5)
    deltas = (rng.standard_normal((500, 4)) * 8).astype(np.float32)
    deltas[:10, 2:] = 100.0  # past log(1000 / 16) * 5: clamped before exp
    theirs = detector.box_coder.decode_single(torch.from_numpy(deltas), torch.from_numpy(anchors)).numpy()
    np.testing.assert_allclose(decode_boxes(deltas, anchors), theirs, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="do not fit anchors"):
        decode_boxes(deltas[:3], anchors)


def _settings(detector, **extra):
    return {"score_converter": detector.score_converter, "score_thresh": detector.score_thresh,
            "nms_thresh": detector.nms_thresh, "detections_per_img": detector.detections_per_img,
            "topk_candidates": detector.topk_candidates, "class_agnostic_nms": detector.class_agnostic_nms, **extra}


@pytest.mark.parametrize("overrides", [
    (),  # softmax: torchvision's own
    ("task.head.score_converter=sigmoid", "task.head.score_thresh=0.3"),
    ("task.head.class_agnostic_nms=true",),
    ("task.head.score_converter=sigmoid", "task.head.class_agnostic_nms=true", "task.head.detections_per_img=5",
     "task.head.topk_candidates=20"),
])
def test_ssd_detections_are_the_detectors(overrides):
    detector = _detector(*overrides)
    rng = np.random.default_rng(1)
    count = 600
    anchors = _boxes(rng, count, 64.0, 30.0) - np.float32(8)  # some past the borders: clipping matters
    for _ in range(3):
        deltas = rng.standard_normal((count, 4)).astype(np.float32)
        logits = (rng.standard_normal((count, 4)) * 3).astype(np.float32)
        (theirs,) = detector.postprocess_detections(
            {"bbox_regression": torch.from_numpy(deltas)[None], "cls_logits": torch.from_numpy(logits)[None]},
            [torch.from_numpy(anchors)], [(64, 64)])
        ours = ssd_detections(deltas, logits, anchors, 64, _settings(detector))
        assert len(ours["scores"]) == len(theirs["scores"]) > 0
        np.testing.assert_allclose(ours["scores"], theirs["scores"].numpy(), rtol=0, atol=1e-6)
        # numpy's exp and torch's differ by an ulp, so two scores within one may come in either order:
        # the same detections, compared by label and box
        _same_detections(ours, {k: v.numpy() for k, v in theirs.items()})


def _same_detections(ours, theirs):
    def table(det):
        rows = np.concatenate([det["labels"][:, None].astype(np.float32), det["boxes"], det["scores"][:, None]], 1)
        return rows[np.lexsort(rows[:, ::-1].T)]

    a, b = table(ours), table(theirs)
    np.testing.assert_array_equal(a[:, 0], b[:, 0])
    np.testing.assert_allclose(a[:, 1:5], b[:, 1:5], rtol=0, atol=1e-4)
    np.testing.assert_allclose(a[:, 5], b[:, 5], rtol=0, atol=1e-6)


def test_no_score_above_the_threshold_is_no_detection():
    settings = {"score_thresh": 0.99, "nms_thresh": 0.5, "detections_per_img": 10, "topk_candidates": 10}
    out = ssd_detections(np.zeros((4, 4), np.float32), np.zeros((4, 3), np.float32),
                         np.array([[0, 0, 5, 5]] * 4, np.float32), 16, settings)
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,) and out["labels"].shape == (0,)
    with pytest.raises(ValueError, match="unknown score_converter 'relu'"):
        ssd_detections(np.zeros((4, 4)), np.zeros((4, 3)), np.zeros((4, 4)), 16,
                       {**settings, "score_converter": "relu"})


@pytest.mark.parametrize("resize", ["squash", "letterbox"])
def test_boxes_back_to_the_original_as_the_transform(resize):
    transform = LetterboxTransform(32, [0.5] * 3, [0.5] * 3, resize).eval()
    rng = np.random.default_rng(2)
    boxes = _boxes(rng, 50, 32.0, 20.0)
    for h, w in [(37, 53), (61, 29), (32, 32)]:
        (theirs,) = transform.postprocess([{"boxes": torch.from_numpy(boxes)}], [(32, 32)], [(h, w)])
        np.testing.assert_allclose(to_original(boxes, 32, h, w, resize), theirs["boxes"].numpy(), rtol=0, atol=1e-5)
