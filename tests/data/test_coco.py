import json

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from mnet_vision.data.coco import CocoDetectionDataset, read_coco
from mnet_vision.data.synthetic import make_shapes_detection_dataset
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
    from mnet_vision.data.coco import SyntheticDetectionDataModule

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
