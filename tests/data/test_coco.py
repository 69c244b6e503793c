import json
import re

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from mnet_vision.data.coco import CocoDetectionDataset, read_coco
from mnet_vision.data.synthetic.shapes import make_shapes_detection_dataset
from mnet_vision.metrics.coco import evaluate_coco

CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 7, "name": "train"}]


def _write(tmp_path, annotations, images=None):
    images = images or [{"id": 10, "file_name": "a.png", "width": 100, "height": 80},
                        {"id": 11, "file_name": "b.png", "width": 100, "height": 80}]
    (tmp_path / "img").mkdir(exist_ok=True)
    for img in images:
        Image.new("RGB", (img["width"], img["height"]), (10, 20, 30)).save(tmp_path / "img" / img["file_name"])
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return path


def _ann(i, bbox, category=1, image=10, **kw):
    return {"id": i, "image_id": image, "category_id": category, "bbox": bbox, "area": 1, "iscrowd": 0, **kw}


def test_category_ids_with_gaps_map_to_contiguous_labels_and_back(tmp_path):
    index = read_coco(_write(tmp_path, [_ann(1, [10, 20, 30, 40], category=90), _ann(2, [0, 0, 5, 5], category=7)]))
    assert index.label_to_category == [0, 1, 7, 90]
    assert index.category_to_label == {1: 1, 7: 2, 90: 3}
    assert index.class_names == ["__background__", "person", "train", "toothbrush"]
    np.testing.assert_array_equal(index.labels[10], [3, 2])
    np.testing.assert_array_equal(index.boxes[10], [[10, 20, 40, 60], [0, 0, 5, 5]])  # xywh -> xyxy


def test_background_images_are_kept(tmp_path):
    index = read_coco(_write(tmp_path, [_ann(1, [10, 20, 30, 40])]))
    assert [img["id"] for img in index.images] == [10, 11]
    assert index.boxes[11].shape == (0, 4) and index.labels[11].shape == (0,)


def test_bad_annotations_are_counted_skips(tmp_path):
    anns = [_ann(1, [10, 10, 20, 20]),
            _ann(2, [10, 10, 20, 20], iscrowd=1),
            _ann(3, [10, 10, 0, 20]),            # zero width
            _ann(4, [10, 10, -5, 20]),           # negative width
            _ann(5, [200, 10, 20, 20]),          # entirely right of the 100-px image
            _ann(6, [90, 70, 20, 20]),           # partly outside: clipped
            _ann(7, [10, 10, 20, 20], category=3),
            _ann(8, [10, 10, 20, 20], image=99)]
    index = read_coco(_write(tmp_path, anns))
    assert index.dropped == {"iscrowd": 1, "box of zero or negative size": 2, "box outside its image": 1,
                             "category_id 3 is not in 'categories'": 1, "image_id 99 is not in 'images'": 1}
    np.testing.assert_array_equal(index.boxes[10], [[10, 10, 30, 30], [90, 70, 100, 80]])


@pytest.mark.parametrize("ann,match", [(_ann(3, [10, 10, 0, 20]), "annotation id 3: box of zero or negative size"),
                                       (_ann(7, [1, 1, 2, 2], category=3), "annotation id 7: category_id 3"),
                                       (_ann(8, [1, 1, 2, 2], image=99), "annotation id 8: image_id 99")])
def test_strict_names_the_annotation(tmp_path, ann, match):
    with pytest.raises(ValueError, match=match):
        read_coco(_write(tmp_path, [ann]), strict=True)


def test_strict_still_drops_crowds(tmp_path):
    assert read_coco(_write(tmp_path, [_ann(1, [1, 1, 5, 5], iscrowd=1)]), strict=True).dropped == {"iscrowd": 1}


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": []\n "annotations": []}')
    with pytest.raises(ValueError, match=r"bad.json: malformed JSON at line 2"):
        read_coco(bad)
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="expected a list under 'categories'"):
        read_coco(bad)
    bad.write_text(json.dumps({"images": [{"id": 1}], "annotations": [], "categories": CATEGORIES}))
    with pytest.raises(ValueError, match=r"images\[0\] lacks \['file_name', 'width', 'height'\]"):
        read_coco(bad)
    with pytest.raises(FileNotFoundError, match="nothing.json does not exist"):
        read_coco(tmp_path / "nothing.json")


def test_dataset_samples_and_flip_transform(tmp_path):
    path = _write(tmp_path, [_ann(1, [10, 20, 30, 40], category=7)])
    ds = CocoDetectionDataset(path, tmp_path / "img")
    sample = ds[0]
    assert sample["image"].shape == (3, 80, 100) and sample["image_id"] == 10 and sample["orig_size"] == (80, 100)
    torch.testing.assert_close(sample["boxes"], torch.tensor([[10.0, 20.0, 40.0, 60.0]]))
    flip = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    flipped = CocoDetectionDataset(path, tmp_path / "img", transform=flip)[0]
    torch.testing.assert_close(flipped["boxes"], torch.tensor([[60.0, 20.0, 90.0, 60.0]]))
    assert flipped["labels"].tolist() == [2]
    assert ds[1]["boxes"].shape == (0, 4)


def test_missing_or_resized_image_is_a_skip_or_strict_error(tmp_path):
    path = _write(tmp_path, [_ann(1, [10, 20, 30, 40])])
    (tmp_path / "img" / "a.png").unlink()
    Image.new("RGB", (50, 50)).save(tmp_path / "img" / "b.png")
    ds = CocoDetectionDataset(path, tmp_path / "img")
    assert "a.png" in ds[0]["skipped"]
    assert "the JSON says 100x80" in ds[1]["error"]
    with pytest.raises(OSError, match="a.png"):
        CocoDetectionDataset(path, tmp_path / "img", strict=True)[0]
    with pytest.raises(FileNotFoundError, match="image folder"):
        CocoDetectionDataset(path, tmp_path / "nowhere")


def test_synthetic_detection_set_reads_back_and_scores_perfectly(tmp_path):
    root = make_shapes_detection_dataset(tmp_path / "det", splits={"train2017": 6, "val2017": 8}, image_size=96,
                                         max_objects=4)
    again = make_shapes_detection_dataset(tmp_path / "det2", splits={"train2017": 6, "val2017": 8}, image_size=96,
                                          max_objects=4)
    gt_file = root / "annotations" / "instances_val2017.json"
    assert gt_file.read_text() == (again / "annotations" / "instances_val2017.json").read_text()
    gt = json.loads(gt_file.read_text())
    assert gt["annotations"] and min(a["id"] for a in gt["annotations"]) == 1
    ds = CocoDetectionDataset(gt_file, root / "val2017", strict=True)
    assert len(ds) == 8 and ds.index.dropped == {}
    # the ground truth itself, as detections, is a perfect result for pycocotools
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"]]
    assert evaluate_coco(gt_file, perfect)["AP"] == pytest.approx(1.0)


def test_collate_keeps_empty_targets_and_lists_skips():
    from mnet_vision.data.coco import collate_detection

    sample = {"image": torch.zeros(3, 8, 8), "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
              "image_id": 5, "orig_size": (8, 8)}
    batch = collate_detection([sample, {"skipped": "bad.png", "error": "truncated"}])
    assert batch["image_ids"] == [5] and batch["skipped"] == ["bad.png"]
    assert batch["targets"][0]["boxes"].shape == (0, 4)
    assert collate_detection([{"skipped": "x.png", "error": "e"}])["images"] == []


def test_transform_output_never_holds_degenerate_boxes(tmp_path):
    """A transform that collapses a box must not pass it on: torchvision would stop training with
    'All bounding boxes should have positive height and width'."""

    class Collapse:  # any callable with albumentations' seeding hook will do as a transform
        def set_random_seed(self, seed):
            pass

        def __call__(self, image, bboxes, labels):
            bboxes = np.array(bboxes)
            bboxes[0, 3] = bboxes[0, 1]  # first box: zero height
            return {"image": torch.zeros(3, 80, 100), "bboxes": bboxes, "labels": labels}

    path = _write(tmp_path, [_ann(1, [10, 20, 30, 5]), _ann(2, [50, 20, 10, 10], category=7)])
    sample = CocoDetectionDataset(path, tmp_path / "img", transform=Collapse())[0]
    assert sample["boxes"].tolist() == [[50, 20, 60, 30]] and sample["labels"].tolist() == [2]


def _detection_module(root, **kw):
    from mnet_vision.data.synthetic.datamodules import SyntheticDetectionDataModule

    module = SyntheticDetectionDataModule(str(root), num_classes=3, images={"train2017": 4, "val2017": 2},
                                          image_size=48, batch_size=2, num_workers=0, **kw)
    module.prepare_data()
    return module


def test_datamodule_batches_maps_and_test_fallback(tmp_path):
    module = _detection_module(tmp_path / "det")
    module.setup("fit")
    assert module.label_to_category == [0, 1, 2, 3]
    assert module.class_names == ["__background__", "circle", "square", "triangle"]
    assert module.test_name == "val2017"  # no test2017 JSON: test falls back to val
    batch = next(iter(module.train_dataloader()))
    assert len(batch["images"]) == 2 and batch["images"][0].dtype == torch.float32
    assert 0.0 <= float(batch["images"][0].min()) and float(batch["images"][0].max()) <= 1.0
    gt = module.ground_truth("val")
    assert sorted(gt.getImgIds()) == [1, 2]


def test_datamodule_errors_name_the_file(tmp_path):
    from mnet_vision.data.coco import CocoDetectionDataModule

    module = _detection_module(tmp_path / "det")
    module.num_classes = 5
    with pytest.raises(ValueError, match="instances_train2017.json declares 3 categories.*num_classes=5"):
        module.setup("fit")
    with pytest.raises(FileNotFoundError, match="annotations/instances_<split>.json"):
        CocoDetectionDataModule(str(tmp_path / "nothing"), num_classes=3).setup("fit")


# --- checks of the COCO JSON itself, shared with the evaluation ground truth (metrics/coco.py) ---

def _gt_file(tmp_path, **overrides):
    data = {"images": [{"id": 10, "file_name": "a.png", "width": 100, "height": 80},
                       {"id": 11, "file_name": "b.png", "width": 100, "height": 80}],
            "annotations": [_ann(1, [10, 10, 20, 20]), _ann(2, [30, 30, 20, 20], image=11)],
            "categories": CATEGORIES, **overrides}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return path


def _both_readers(path, strict=False):
    """The training reader and the evaluation ground truth, which must agree on every check."""
    from mnet_vision.metrics.coco import load_coco_gt

    return [lambda: read_coco(path, strict=strict), lambda: load_coco_gt(path, strict=strict)]


@pytest.mark.parametrize("images, annotations, categories, match", [
    # two pictures under one id: pycocotools pooled their boxes, the reader trained b.png with a.png's boxes
    ([{"id": 10, "file_name": "a.png", "width": 100, "height": 80},
      {"id": 10, "file_name": "b.png", "width": 100, "height": 80}], None, None,
     r"gt\.json: 1 repeated id\(s\) in 'images': 10 at \[0\] and \[1\]"),
    (None, [_ann(1, [1, 1, 5, 5]), _ann(1, [2, 2, 5, 5], image=11)], None,
     r"gt\.json: 1 repeated id\(s\) in 'annotations': 1 at \[0\] and \[1\]"),
    (None, None, [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], r"repeated id\(s\) in 'categories'"),
    ([{"id": 10, "file_name": "a.png", "width": 100, "height": 80},
      {"id": 11, "file_name": "a.png", "width": 100, "height": 80}], [], None,
     r"gt\.json: 1 file name\(s\) listed for more than one image: 'a.png' at \[0\] and \[1\]"),
    ([{"id": 10, "file_name": "a.png", "width": 0, "height": 80}], [], None, r"images\[0\] \(id 10\) has width 0"),
    ([{"id": 10, "file_name": "a.png", "width": 100, "height": -8}], [], None, r"has height -8"),
    ([{"id": 10, "file_name": "a.png", "width": True, "height": 80}], [], None, r"has width True"),
    ([{"id": 10, "file_name": "a.png", "width": "100", "height": 80}], [], None, r"has width '100'"),
    ([{"id": True, "file_name": "a.png", "width": 100, "height": 80}], [], None, r"images\[0\] has id True"),
    ([{"id": "10", "file_name": "a.png", "width": 100, "height": 80}], [], None, r"images\[0\] has id '10'"),
    ([{"id": 10, "file_name": "", "width": 100, "height": 80}], [], None, r"has file_name ''"),
    (None, ["not an object"], None, r"annotations\[0\] is str"),
])
def test_file_level_errors_name_file_and_ids_in_training_and_evaluation(tmp_path, images, annotations, categories,
                                                                        match):
    overrides = {k: v for k, v in (("images", images), ("annotations", annotations), ("categories", categories))
                 if v is not None}
    for read in _both_readers(_gt_file(tmp_path, **overrides)):
        with pytest.raises(ValueError, match=match):
            read()


BAD_BOXES = [
    (_ann(5, [1, 2, 3]), "bbox is not 4 finite numbers"),                       # 3 numbers
    (_ann(5, "1,2,3,4"), "bbox is not 4 finite numbers"),                       # a string
    (_ann(5, ["1", 2, 3, 4]), "bbox is not 4 finite numbers"),                  # a string inside
    (_ann(5, {"x": 1}), "bbox is not 4 finite numbers"),                        # not a list
    (_ann(5, [float("nan"), 2, 3, 4]), "bbox is not 4 finite numbers"),         # NaN
    (_ann(5, [1, 2, float("inf"), 4]), "bbox is not 4 finite numbers"),         # infinity
    (_ann(5, [1, 2, True, 4]), "bbox is not 4 finite numbers"),                 # bool is no number
    (_ann(5, [1, 2, -3, 4]), "box of zero or negative size"),
    (_ann(5, [1, 2, 3, 4], image=True), "image_id True is not in 'images'"),    # True == 1, still no id
    (_ann(5, [1, 2, 3, 4], image=12), "image_id 12 is not in 'images'"),
    (_ann(5, [1, 2, 3, 4], category=2), "category_id 2 is not in 'categories'"),
    (_ann(5, [1, 2, 3, 4], iscrowd="0"), "iscrowd '0' is not 0 or 1"),          # "0" is truthy: a silent crowd
]


@pytest.mark.parametrize("ann, reason", BAD_BOXES)
def test_bad_annotations_are_counted_drops_or_strict_errors(tmp_path, ann, reason):
    path = _gt_file(tmp_path, annotations=[_ann(1, [10, 10, 20, 20]), ann])
    index = read_coco(path)
    assert sum(index.dropped.values()) == 1 and reason in next(iter(index.dropped))
    assert index.boxes[10].tolist() == [[10, 10, 30, 30]]
    from mnet_vision.metrics.coco import load_coco_gt

    gt = load_coco_gt(path)
    assert sorted(gt.getAnnIds()) == [1] and sum(gt.dropped.values()) == 1
    for read in _both_readers(path, strict=True):
        with pytest.raises(ValueError, match=rf"gt\.json: annotation id 5: {re.escape(reason)}"):
            read()


def test_nan_box_is_no_longer_a_silent_target(tmp_path):
    """A NaN bbox went through strict mode and vanished uncounted."""
    path = _gt_file(tmp_path, annotations=[_ann(3, [float("nan"), 10, 20, 20])])
    assert read_coco(path).dropped == {"bbox is not 4 finite numbers [x, y, w, h]": 1}
    with pytest.raises(ValueError, match=r"annotation id 3: bbox is not 4 finite numbers.*\[nan, 10, 20, 20\]"):
        read_coco(path, strict=True)


def test_ground_truth_keeps_degenerate_but_valid_boxes_and_checks_area(tmp_path):
    from mnet_vision.metrics.coco import load_coco_gt

    path = _gt_file(tmp_path, annotations=[_ann(1, [10, 10, 0, 20]), _ann(2, [500, 10, 5, 5]),
                                           {**_ann(3, [1, 1, 5, 5]), "area": float("nan")}])
    gt = load_coco_gt(path)
    assert sorted(gt.getAnnIds()) == [1, 2] and dict(gt.dropped) == {"area is not a finite number >= 0": 1}
    with pytest.raises(ValueError, match="annotation id 3: area is not a finite number"):
        load_coco_gt(path, strict=True)


def test_datamodule_ground_truth_is_strict_with_the_data(tmp_path):
    module = _detection_module(tmp_path / "det", strict=True)
    gt_file = module.annotation_file("val2017")
    data = json.loads(gt_file.read_text())
    data["annotations"][0]["bbox"] = [1, 2, 3]
    module.setup("fit")
    gt_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"instances_val2017\.json: annotation id {data['annotations'][0]['id']}: bbox"):
        module.ground_truth("val")


def test_results_with_bools_or_strings_are_named(tmp_path):
    from mnet_vision.metrics.coco import load_coco_gt, validate_results

    gt = load_coco_gt(_gt_file(tmp_path))
    for entry, match in [({"image_id": 10, "category_id": 1, "bbox": ["1", 2, 3, 4], "score": 0.5}, r"\[0\] bbox"),
                         ({"image_id": 10, "category_id": 1, "bbox": [1, 2, 3, 4], "score": True}, r"\[0\] score True"),
                         ({"image_id": True, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}, r"image_id True"),
                         ({"image_id": 10, "category_id": [1], "bbox": [1, 2, 3, 4], "score": 0.5}, r"category_id \[1\]")]:
        with pytest.raises(ValueError, match=match):
            validate_results([entry], gt, "res.json")


# --- encodings ---

def test_coco_json_with_a_bom_reads_and_a_latin1_byte_names_the_line(tmp_path):
    from mnet_vision.metrics.coco import load_coco_gt

    path = _gt_file(tmp_path)
    text = path.read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert len(read_coco(path).images) == 2 and len(load_coco_gt(path).getImgIds()) == 2
    path.write_bytes(text.replace('"a.png"', '"caf\xe9.png"').replace(", ", ",\n").encode("latin-1"))
    for read in _both_readers(path):  # line 2 is '"file_name": "caf\xe9.png", ...' after a 22-character line 1
        with pytest.raises(ValueError, match=r"gt\.json, line 2, column 18 \(byte offset 40\): byte b'\\xe9' is not UTF-8"):
            read()
