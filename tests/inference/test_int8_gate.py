"""The INT8 accuracy gate (inference/int8_gate.py): fp32 and INT8 exports scored on a held-out split
with the task's own metric; a model that loses more than the tolerance is refused and not written."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image
from torch import nn

pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxruntime) is not installed")

from mnet_vision.config import compose  # noqa: E402
from mnet_vision.deploy.metadata import read_exported  # noqa: E402
from mnet_vision.deploy.quantize import quantize_int8  # noqa: E402
from mnet_vision.heads.classifier import ClassifierHead  # noqa: E402
from mnet_vision.inference.export import export_onnx  # noqa: E402
from mnet_vision.inference.int8_gate import (  # noqa: E402
    GateReport,
    Int8GateError,
    calibration_files,
    gate,
    quantize_with_gate,
)
from mnet_vision.inference.load import load_model  # noqa: E402
from mnet_vision.training import train  # noqa: E402
from tests.helpers.cli import REPO, run_tool  # noqa: E402


class HugeRangeHead(nn.Module):
    """A classifier head made fragile on purpose: one pooled feature is offset by ``offset`` and the
    FC bias takes the offset back out, so fp32 logits are the same (up to float32 rounding) while the
    FC input's per-tensor INT8 range is ``offset`` wide: ~offset / 255 per step, and every other
    feature (a few units) rounds to 0."""

    def __init__(self, head: ClassifierHead, offset: float = 1e4):
        super().__init__()
        self.tap, self.pool, self.fc = head.tap, head.pool, head.fc
        shift = torch.zeros(head.fc.in_features)
        shift[0] = offset
        self.register_buffer("shift", shift)
        with torch.no_grad():
            self.fc.bias -= self.fc.weight @ shift

    def forward(self, features):
        return self.fc(self.pool(features[self.tap]).flatten(1) + self.shift)


# Four colour classes: a tiny classifier learns them in seconds (100 % on the test split), so a gate
# that loses accuracy has accuracy to lose; the shapes set needs minutes for that.
COLOURS = {"blue": (40, 60, 200), "green": (40, 180, 60), "red": (200, 40, 40), "yellow": (220, 200, 40)}
SPLITS = {"train": 16, "val": 6, "test": 8}


def colour_folders(root: Path, size: int = 32, seed: int = 0) -> Path:
    """An ImageFolder tree of noisy solid-colour images, ``SPLITS`` images per class and split."""
    rng = np.random.default_rng(seed)
    for split, count in SPLITS.items():
        for name, rgb in COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.array(rgb) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """A seconds-long trained tiny classifier of the colour classes: metrics, fp32 export, loaded model."""
    root = tmp_path_factory.mktemp("gate")
    data = colour_folders(root / "colours")
    overrides = ["task=classification", "debug=tiny", "data=imagenet", f"data.root={data}",
                 f"data.num_classes={len(COLOURS)}", "task.input_size=32", "data.batch_size=16",
                 "data.crop_fraction=1.0", "data.min_crop_scale=0.6", "trainer.max_epochs=10",
                 "backbone.bn_momentum=0.5", "task.module.optimizer.lr=0.002", "task.module.optimizer.eps=1e-3"]
    metrics = train(compose(overrides), run_dir=root / "run")
    assert metrics["test/top1"] >= 0.9  # the premise of the refusal test below
    loaded = load_model(metrics["best_checkpoint"], fast=False)
    fp32 = export_onnx(loaded, root / "fp32.onnx", dynamo=False).path
    return {"metrics": metrics, "fp32": fp32, "loaded": loaded, "calibration": sorted((data / "train").rglob("*.png"))}


def datamodule(loaded):
    return instantiate(loaded.cfg.data)


def test_gate_passes_a_faithful_int8_model_and_stores_its_report(classifier_run, tmp_path):
    fp32, loaded = classifier_run["fp32"], classifier_run["loaded"]
    out = tmp_path / "int8.onnx"
    path, report = quantize_with_gate(fp32, out, classifier_run["calibration"], datamodule(loaded), split="test",
                                      tolerance=50.0, vnni=True, speed_rounds=0)
    assert path == out and out.is_file()
    assert (report.metric, report.split, report.images, report.skipped) == ("top-1 (%)", "test", 32, 0)
    # the fp32 export scores what the checkpoint scored in its own test run (same images, same model)
    assert report.fp32 == pytest.approx(100 * classifier_run["metrics"]["test/top1"], abs=1e-6)
    assert report.passed and report.loss == pytest.approx(report.fp32 - report.int8)
    assert read_exported(out).quantization["gate"] == report.as_dict()
    again = gate(fp32, out, datamodule(loaded), split="test", tolerance=50.0)
    assert (again.fp32, again.int8) == (report.fp32, report.int8)  # deterministic


def test_gate_refuses_a_model_made_fragile_on_purpose_and_writes_nothing(classifier_run, tmp_path):
    loaded = classifier_run["loaded"]
    fragile = load_model(classifier_run["metrics"]["best_checkpoint"], fast=False)
    fragile.model.head = HugeRangeHead(fragile.model.head)
    fp32 = export_onnx(fragile, tmp_path / "fragile.onnx", dynamo=False, check_atol=1e-2).path
    out = tmp_path / "int8.onnx"
    with pytest.raises(Int8GateError, match=r"not written to .*int8.onnx: top-1 \(%\) on the test split \(32 images\)"
                                            r": fp32 .*, a loss of .* points, which exceeds the tolerance of 1.00"):
        quantize_with_gate(fp32, out, classifier_run["calibration"], datamodule(loaded), split="test", vnni=True,
                           speed_rounds=0)
    assert not out.exists()
    # the same quantization without the gate: the fp32 model is as good as the original, INT8 is not
    int8 = quantize_int8(fp32, tmp_path / "ungated.onnx", classifier_run["calibration"], vnni=True, speed_rounds=0)
    report = gate(fp32, int8, datamodule(loaded), split="test", tolerance=0.0)
    original = gate(classifier_run["fp32"], classifier_run["fp32"], datamodule(loaded), split="test", tolerance=0.0)
    assert report.fp32 == original.fp32 and original.passed and original.loss == 0
    assert not report.passed and report.loss > 1.0


def test_gate_rejects_bad_arguments(classifier_run):
    fp32, loaded = classifier_run["fp32"], classifier_run["loaded"]
    with pytest.raises(ValueError, match="tolerance is a loss in points"):
        gate(fp32, fp32, datamodule(loaded), tolerance=-1)
    with pytest.raises(ValueError, match="a held-out split: 'val' or 'test', got 'train'"):
        gate(fp32, fp32, datamodule(loaded), split="train")


def test_gate_report_message_says_by_how_much():
    report = GateReport("COCO AP (x100)", 58.03, 56.5, 1.53, 1.0, False, "test", 200)
    assert report.message() == ("COCO AP (x100) on the test split (200 images): fp32 58.03, INT8 56.50, a loss of "
                                "1.53 points, which exceeds the tolerance of 1.00")
    assert report.as_dict()["loss"] == 1.53 and np.isfinite(report.as_dict()["int8"])


def test_detection_gate_scores_coco_ap_of_both_models(detection_run, run_export, tmp_path):
    loaded = load_model(detection_run["best_checkpoint"], fast=False)
    fp32 = run_export(detection_run)
    root = Path(detection_run["run_dir"]).parent / "data"
    files = sorted((root / "train2017").iterdir())  # the tiny set's 8 training images
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", files, vnni=True, speed_rounds=0, min_images=len(files))
    report = gate(fp32, int8, datamodule(loaded), split="test", tolerance=100.0)
    assert report.metric == "COCO AP (x100)" and report.passed
    # the fp32 export's AP is the checkpoint's own test AP (pycocotools on the same detections, to 1e-4 px)
    assert report.fp32 == pytest.approx(100 * detection_run["test/AP"], abs=0.05)
    assert 0 <= report.int8 <= 100


def test_embedding_gate_scores_verification_accuracy_of_both_models(embedding_run, run_export, tmp_path):
    loaded = load_model(embedding_run["best_checkpoint"], fast=False)
    fp32 = run_export(embedding_run)
    files = sorted((Path(embedding_run["run_dir"]).parent / "data" / "train").rglob("*.png"))
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", files, vnni=True, speed_rounds=0)
    report = gate(fp32, int8, datamodule(loaded), split="test", tolerance=100.0)
    assert report.metric == "verification accuracy (%)" and report.passed
    assert report.images == 18 and 0 <= report.int8 <= 100 and 0 <= report.fp32 <= 100


def test_export_tool_writes_a_gated_int8_file(classifier_run, tmp_path):
    ckpt = classifier_run["metrics"]["best_checkpoint"]
    result = run_tool("export.py", f"ckpt={ckpt}", f"out={tmp_path / 'colours.onnx'}", "dynamo=false", "quantize=int8",
                      "calib=train", "tolerance=50", "reduce_range=false")
    int8 = tmp_path / "colours.int8.onnx"
    info = read_exported(int8).quantization
    assert info["gate"]["metric"] == "top-1 (%)" and info["gate"]["images"] == 32
    assert info["calibration_images"] == 64 and info["reduce_range"] is False
    assert "gate: top-1 (%) on the test split (32 images): fp32 " in result.stdout and "speed (rough" in result.stdout
    too_few = subprocess.run([sys.executable, "tools/export.py", f"ckpt={ckpt}", f"out={tmp_path / 'b.onnx'}",
                              "dynamo=false", "quantize=int8", "calib=val", "calib_min=32"], cwd=REPO,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert too_few.returncode != 0 and not (tmp_path / "b.int8.onnx").exists()
    assert "needs at least 32 readable images; got 24 readable of 24 given" in too_few.stderr


def test_attribute_gate_scores_mean_ap_of_both_models(attribute_run, run_export, tmp_path):
    loaded = load_model(attribute_run["best_checkpoint"], fast=False)
    fp32 = run_export(attribute_run)
    files = calibration_files("train", datamodule(loaded))
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", files, vnni=True, speed_rounds=0)
    report = gate(fp32, int8, datamodule(loaded), split="test", tolerance=100.0)
    assert report.metric == "mean AP (x100)" and report.passed and report.images == 24
    # near the checkpoint's own test mean AP: the tiny model's logits tie across images (equal to 2e-7
    # between ONNX and PyTorch), and AP ranks tied scores in whatever order they arrive
    assert report.fp32 == pytest.approx(100 * attribute_run["test/mean_ap"], abs=2.0)


def test_calibration_files_from_a_folder_or_a_split(classifier_run, tmp_path):
    data = datamodule(classifier_run["loaded"])
    train = calibration_files("train", data)
    assert train == classifier_run["calibration"] and len(train) == 64
    some = calibration_files("train", data, limit=8)
    assert len(some) == 8 and {p.parent.name for p in some} == set(COLOURS)  # evenly spaced: every class
    assert calibration_files(train[0].parents[1], limit=None) == train
    with pytest.raises(FileNotFoundError, match="calibration folder .*missing does not exist"):
        calibration_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="calib=val names a split, but there is no data config"):
        calibration_files("val")
