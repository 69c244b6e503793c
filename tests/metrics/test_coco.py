"""COCO metrics on cases whose answer is known by construction."""
import json

import pytest

from mnet_vision.metrics.coco import COCO_METRICS, coco_table, detections_to_results, evaluate_coco, load_coco_gt
from tests.helpers.coco import GT, perfect_results


def test_perfect_detections_score_one():
    m = evaluate_coco(GT, perfect_results())
    assert set(m) == set(COCO_METRICS)
    for name in ("AP", "AP50", "AP75", "AP_medium", "AR1", "AR10", "AR100", "AR_medium"):
        assert m[name] == pytest.approx(1.0), name
    assert m["AP_small"] == -1 and m["AP_large"] == -1  # no ground truth of those sizes


def test_empty_results_give_zeros_not_a_crash():
    assert evaluate_coco(GT, []) == {name: 0.0 for name in COCO_METRICS}


def test_missed_object_counts():
    # only image 1 detected: circle recall 1/2 (AP 51/101 on the 101-point curve), square recall 1
    m = evaluate_coco(GT, perfect_results()[:2])
    assert m["AR100"] == pytest.approx(0.75)
    assert m["AP"] == pytest.approx((51 / 101 + 1) / 2)
    # restricted to image 1, nothing is missed
    assert evaluate_coco(GT, perfect_results()[:2], image_ids=[1])["AP"] == pytest.approx(1.0)


def test_iou_between_0_60_and_0_65_passes_three_of_ten_thresholds():
    # x shifts give IoU 38.5/61.5 = 0.626, 31/49 = 0.633 and 47/73 = 0.644
    m = evaluate_coco(GT, perfect_results(shift=(11.5, 9, 13)))
    assert m["AP50"] == pytest.approx(1.0) and m["AP75"] == 0.0
    assert m["AP"] == pytest.approx(0.3)


def test_detections_to_results_maps_labels_and_boxes():
    results = detections_to_results(1, [[10, 10, 60, 60], [100, 100, 140, 140]], [0, 1], [0.8, 0.7],
                                    label_to_category=[1, 7])
    assert results[0] == {"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 50.0, 50.0], "score": 0.8}
    assert results[1]["category_id"] == 7 and results[1]["bbox"] == [100.0, 100.0, 40.0, 40.0]
    results += detections_to_results(2, [[20, 30, 80, 70]], [0], [0.9], {0: 1})
    assert evaluate_coco(GT, results)["AP"] == pytest.approx(1.0)


def test_unknown_image_id_is_named_before_pycocotools():
    bad = perfect_results() + [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]
    with pytest.raises(ValueError, match=r"\[3\] image_id 99 is not in the ground truth"):
        evaluate_coco(GT, bad)


def test_unknown_category_is_named():
    bad = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.5}]
    with pytest.raises(ValueError, match=r"category_id 3 is not one of \[1, 7\]"):
        evaluate_coco(GT, bad)


@pytest.mark.parametrize("entry,match", [({"bbox": [0, 0, -1, 5]}, "bbox"), ({"bbox": [0, 0, 5]}, "bbox"),
                                         ({"score": float("nan")}, "score")])
def test_malformed_detection(entry, match):
    bad = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5, **entry}]
    with pytest.raises(ValueError, match=match):
        evaluate_coco(GT, bad)


def test_files_and_their_errors(tmp_path):
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(GT))
    res_path.write_text(json.dumps(perfect_results()))
    assert evaluate_coco(gt_path, res_path)["AP"] == pytest.approx(1.0)
    (tmp_path / "broken.json").write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(ValueError, match=r"broken.json: malformed JSON at line 2"):
        load_coco_gt(tmp_path / "broken.json")
    res_path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="holds a list of detections"):
        evaluate_coco(gt_path, res_path)
    with pytest.raises(FileNotFoundError, match="nothing.json does not exist"):
        evaluate_coco(tmp_path / "nothing.json", [])


def test_ground_truth_checks():
    no_iscrowd = {**GT, "annotations": [{k: v for k, v in GT["annotations"][0].items() if k != "iscrowd"}]}
    with pytest.raises(ValueError, match=r"annotations\[0\] lacks \['iscrowd'\]"):
        load_coco_gt(no_iscrowd)
    zero_id = {**GT, "annotations": [{**GT["annotations"][0], "id": 0}]}
    with pytest.raises(ValueError, match="ids must start at 1"):
        load_coco_gt(zero_id)


def test_table_lists_the_twelve():
    assert coco_table(evaluate_coco(GT, perfect_results())).count("\n") == 13
