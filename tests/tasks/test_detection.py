"""The detection task end to end on a tiny synthetic COCO set: train, COCO mAP, results, pictures."""
import json
from pathlib import Path

import pytest
import torch

from mnet_vision.config import compose
from mnet_vision.data.synthetic.datamodules import SyntheticDetectionDataModule
from mnet_vision.metrics.coco import evaluate_coco
from mnet_vision.model import build_model
from mnet_vision.training import evaluate


@pytest.fixture
def trained(detection_run):
    return detection_run


def test_train_scores_coco_metrics_and_writes_results_and_pictures(trained):
    run = trained["run_dir"]
    for name in ("val/AP", "val/AP50", "test/AP", "test/AP50", "test/AR100"):
        assert 0.0 <= trained[name] <= 1.0, name
    assert "skipped/train" in trained
    results_file = f"{run}/detections_test.json"
    results = json.load(open(results_file))
    assert results and {"image_id", "category_id", "bbox", "score"} <= set(results[0])
    # the results file is what pycocotools scored: re-scoring it gives the logged AP
    gt = f"{trained['run_dir']}/../data/annotations/instances_test2017.json"
    assert evaluate_coco(gt, results_file)["AP"] == pytest.approx(trained["test/AP"], abs=1e-6)
    pictures = sorted(p.name for p in Path(run, "detections_test").glob("*.png"))
    assert pictures == ["000001.png", "000002.png"]  # task.module.pictures=2


def test_evaluate_rebuilds_the_detector_from_its_checkpoint(trained, tmp_path):
    metrics = evaluate(trained["best_checkpoint"], "test", out_dir=tmp_path)
    assert metrics["test/AP"] == pytest.approx(trained["test/AP"], abs=1e-6)
    assert (tmp_path / "detections_test.json").is_file()


@pytest.mark.parametrize("task, steps, size, extra", [
    ("ssd300", 80, 96, []),
    # a 64 px input and few RoIs: torchvision's CPU RoIAlign backward dominates a step, ~3x faster than at
    # 96 px with 50 proposals (AP50 1.0 from step 70 on, seeded)
    ("faster_rcnn_300", 80, 64, ["task.head.proposals_train=20", "task.head.proposals_test=20",
                                "task.head.box_batch_size_per_image=16"]),
])
def test_detector_learns_its_training_images(task, steps, size, extra, tmp_path):
    """Known answer by construction: a detector trained on two images without augmentation finds
    their objects (AP50 near 1) where the untrained one scores near 0."""
    torch.manual_seed(0)
    module = SyntheticDetectionDataModule(str(tmp_path / "data"), num_classes=2, images={"train2017": 2, "val2017": 1},
                                          image_size=64, max_objects=2, augment="none", batch_size=2, num_workers=0)
    module.prepare_data()
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert sum(len(t["boxes"]) for t in batch["targets"]) > 0
    model = build_model(compose([f"task={task}", "data=shapes_detection", "data.num_classes=2",
                                 "backbone.alpha=0.25", f"task.input_size={size}", *extra]))
    gt = str(module.annotation_file("train2017"))

    def ap50() -> float:
        from mnet_vision.metrics.coco import detections_to_results

        model.eval()
        with torch.no_grad():
            detections = model(batch["images"])
        results = [r for i, d in zip(batch["image_ids"], detections)
                   for r in detections_to_results(i, d["boxes"], d["labels"], d["scores"], module.label_to_category)]
        return evaluate_coco(gt, results)["AP50"]

    before = ap50()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3 if task == "ssd300" else 1e-3)
    model.train()
    for _ in range(steps):
        loss = sum(model(batch["images"], batch["targets"]).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = ap50()
    assert before < 0.2 and after > 0.8, (before, after)


def test_a_non_finite_loss_stops_training_naming_the_images():
    from mnet_vision.training import build_task

    task = build_task(compose(["data.num_classes=2", "backbone.alpha=0.25", "task.input_size=96"]))
    image = torch.rand(3, 64, 64)
    image[0, 0, 0] = float("nan")  # one bad pixel poisons the batch's loss
    batch = {"images": [image, torch.rand(3, 64, 64)], "image_ids": [17, 18],
             "targets": [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}] * 2}
    with pytest.raises(FloatingPointError, match=r"on images \[17, 18\]"):
        task.training_step(batch, 0)
    assert task.training_step({"images": [], "targets": [], "image_ids": []}, 1) is None  # all skipped
