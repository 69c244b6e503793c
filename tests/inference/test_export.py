"""ONNX export of every task: the file passes the checker, carries metadata that reads back, gives
ONNX Runtime outputs equal to PyTorch's at batch 1 and 3, and is never written when its check
fails; bad files are clear errors. The TorchScript exporter is used for speed (a tiny model takes
~1 s there, ~20 s through dynamo on 2 cores); one test exports through dynamo."""
import json

import numpy as np
import onnx
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from mnet_vision.checkpoints import atomic_save
from mnet_vision.config import compose
from mnet_vision.deploy.metadata import (
    DETECTOR_KEY,
    INPUT_NAME,
    ForeignModelError,
    NotOnnxError,
    WrongTaskError,
    read_exported,
)
from mnet_vision.geo.cells import GeoCellPartition
from mnet_vision.images import read_rgb
from mnet_vision.inference.export import (
    ExportCheckError,
    ExportUnsupportedError,
    default_images,
    export_onnx,
)
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.inference.load import LoadedModel, ModelMeta, load_model
from mnet_vision.model import build_model
from mnet_vision.pretrained.models import load_pretrained
from mnet_vision.training import build_task
from tests.helpers.cli import run_tool
from tests.helpers.configs import (
    tiny_attribute_overrides,
    tiny_detection_overrides,
    tiny_geo_cell_counts,
    tiny_geo_overrides,
    tiny_identity_overrides,
    tiny_overrides,
)
from tests.helpers.models import randomise_batchnorm
from tests.helpers.pretrained import faceapi_package

ort = pytest.importorskip("onnxruntime", reason="the ONNX export is checked with onnxruntime (the deploy extra)")

TINY = "backbone.alpha=0.25"


def _checkpoint(tmp_path, name: str, overrides: list[str], partitions=None):
    """A checkpoint written by the task's own save path (its ``on_save_checkpoint``), untrained but
    with random BatchNorm statistics so that folding changes the weights."""
    task = build_task(compose(overrides))
    randomise_batchnorm(task.model)
    if partitions is not None:
        task.model.head.set_partitions(partitions)
    checkpoint = {"state_dict": task.state_dict()}
    task.on_save_checkpoint(checkpoint)
    path = tmp_path / f"{name}.ckpt"
    atomic_save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    geo_root = root / "geo"
    counts = tiny_geo_cell_counts(geo_root)
    geo_data = instantiate(compose(tiny_geo_overrides(geo_root, counts)).data)
    partitions = [GeoCellPartition.read_csv(p) for p in geo_data.partition_files]
    return {
        "ClassificationTask": _checkpoint(root, "shapes", tiny_overrides(root / "shapes", TINY)),
        "AttributeTask": _checkpoint(root, "attributes", tiny_attribute_overrides(root / "attributes", TINY)),
        "EmbeddingTask": _checkpoint(root, "faces", tiny_identity_overrides(root / "faces", TINY)),
        "GeolocationTask": _checkpoint(root, "geo", tiny_geo_overrides(geo_root, counts, TINY), partitions),
        "DetectionTask": _checkpoint(root, "ssd", tiny_detection_overrides(root / "det", TINY)),
    }


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _torch_outputs(ckpt, images):
    """PyTorch's outputs of the checkpoint's plain (unfolded) eval model, as the graph names them."""
    loaded = load_model(ckpt, fast=False)
    with torch.no_grad():
        if loaded.meta.task == "DetectionTask":
            detector = loaded.model.head.detector
            out = detector.head(list(detector.backbone(images).values()))
            return [out["bbox_regression"], out["cls_logits"]]
        out = loaded.model(images)
    return list(out) if isinstance(out, list) else [out]


@pytest.mark.parametrize("task", ["ClassificationTask", "AttributeTask", "EmbeddingTask", "GeolocationTask",
                                  "DetectionTask"])
def test_every_task_exports_and_matches_pytorch(checkpoints, tmp_path, task):
    ckpt = checkpoints[task]
    out = tmp_path / "model.onnx"
    result = export_onnx(ckpt, out, dynamo=False)
    assert result.path == out and result.exporter == "torchscript" and result.size_bytes == out.stat().st_size
    assert result.max_abs_diff <= 1e-4
    onnx.checker.check_model(onnx.load(out), full_check=True)
    exported = read_exported(out, task=task)
    loaded = load_model(ckpt, fast=False)
    assert exported.meta == loaded.meta.as_dict() and exported.outputs == result.outputs
    assert exported.source["exporter"] == "torchscript" and exported.source["max_abs_diff"] == result.max_abs_diff
    assert exported.source["checkpoint"] == str(ckpt) and exported.input_shape[0] == "batch"
    size = exported.input_size
    assert exported.input_shape == ("batch", 3, size, size)
    if task == "GeolocationTask":
        head = loaded.model.head
        assert result.outputs == ("logits_0", "logits_1")
        fine = exported.geo["partitions"][-1]
        assert [int(i) for i in fine["cell_ids"]] == [int(i) for i in head.cell_ids(-1)]
        assert fine["tokens"] == list(head.partition(-1).tokens)
        np.testing.assert_array_equal(np.array(exported.geo["ancestors"]), head.ancestors.numpy())
        np.testing.assert_allclose(np.array(fine["cell_points"]), head.cell_points(-1).numpy())
    elif task == "DetectionTask":
        assert result.outputs == ("bbox_regression", "cls_logits")
        head = loaded.model.head
        np.testing.assert_allclose(exported.anchors(), head.anchors().numpy() * size, atol=1e-4)
        assert exported.detector["score_converter"] == "softmax" and exported.preprocess["resize"] == "squash"
        assert exported.preprocess["order"] == "normalize_then_resize"
    else:
        names = {"EmbeddingTask": ("embedding",)}.get(task, ("logits",))
        assert result.outputs == names
        assert exported.preprocess["kind"] == "classification"
        assert exported.preprocess["crop_fraction"] == loaded.meta.transform.get("crop_fraction", 0.875)
    # dynamic batch: 1 and 3 real images, each equal to the unfolded PyTorch model within 1e-4
    images = default_images(loaded, count=3, seed=1)
    session = _session(out)
    for batch in (images[:1], images):
        got = session.run(None, {INPUT_NAME: batch.numpy()})
        want = _torch_outputs(ckpt, batch)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == tuple(w.shape)
            np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0)


def test_dynamo_exporter(checkpoints, tmp_path):
    out = tmp_path / "dynamo.onnx"
    result = export_onnx(checkpoints["ClassificationTask"], out)
    assert result.exporter == "dynamo" and result.max_abs_diff <= 1e-4
    exported = read_exported(out, task="ClassificationTask")
    assert exported.source["exporter"] == "dynamo" and exported.input_shape[0] == "batch"
    images = default_images(load_model(checkpoints["ClassificationTask"], fast=False), count=3, seed=2)
    session = _session(out)
    for batch in (images[:1], images):
        np.testing.assert_allclose(session.run(None, {INPUT_NAME: batch.numpy()})[0],
                                   _torch_outputs(checkpoints["ClassificationTask"], batch)[0].numpy(), atol=1e-4)


def test_nms_in_graph_matches_torchvision(checkpoints, tmp_path):
    """The in-graph NonMaxSuppression keeps what torchvision's batched_nms keeps on the same decoded
    boxes (export_onnx checks it per image and refuses otherwise); here the outputs' shapes and
    their grouping by image at batch 1 and 3."""
    out = tmp_path / "nms.onnx"
    result = export_onnx(checkpoints["DetectionTask"], out, dynamo=False, nms_in_graph=True)
    assert result.outputs == ("bbox_regression", "cls_logits", "detection_boxes", "detection_scores",
                              "detection_labels", "num_detections")
    assert read_exported(out).detector["nms_in_graph"] is True
    session = _session(out)
    images = default_images(load_model(checkpoints["DetectionTask"], fast=False), count=3)
    single = dict(zip(result.outputs, session.run(None, {INPUT_NAME: images[:1].numpy()})))
    batch = dict(zip(result.outputs, session.run(None, {INPUT_NAME: images.numpy()})))
    counts = batch["num_detections"]
    assert counts.shape == (3,) and counts.sum() == len(batch["detection_boxes"]) == len(batch["detection_scores"])
    assert batch["detection_boxes"].shape[1:] == (4,) and batch["detection_labels"].dtype == np.int64
    assert (batch["detection_labels"] >= 1).all()
    # image 0 alone gives the rows image 0 has in the batch
    assert single["num_detections"].tolist() == [counts[0]]
    np.testing.assert_allclose(single["detection_scores"], batch["detection_scores"][:counts[0]], atol=1e-5)
    with pytest.raises(ValueError, match="nms_in_graph applies to SSD"):
        export_onnx(checkpoints["ClassificationTask"], tmp_path / "x.onnx", dynamo=False, nms_in_graph=True)


def test_failed_check_writes_nothing(checkpoints, tmp_path):
    out = tmp_path / "refused.onnx"
    # BN folding and ORT's kernels round differently from PyTorch: no export is exact
    with pytest.raises(ExportCheckError, match=r"above check_atol=0: .*refused.onnx was not written"):
        export_onnx(checkpoints["ClassificationTask"], out, dynamo=False, check_atol=0.0)
    assert not out.exists() and not list(tmp_path.iterdir())
    out.write_bytes(b"the previous good file")
    with pytest.raises(ExportCheckError):
        export_onnx(checkpoints["ClassificationTask"], out, dynamo=False, check_atol=0.0)
    assert out.read_bytes() == b"the previous good file"
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\) tensor, got \(2, 3, 16, 16\)"):
        export_onnx(checkpoints["ClassificationTask"], out, images=torch.zeros(2, 3, 16, 16), dynamo=False)


def test_faster_rcnn_is_refused_saying_where(tmp_path):
    cfg = compose(["task=faster_rcnn_300", TINY, "task.input_size=96", "task.num_classes=2"])
    model = prepare_for_inference(build_model(cfg))
    loaded = LoadedModel(model, cfg, ModelMeta(task="DetectionTask", input_size=96), source="faster_rcnn")
    with pytest.raises(ExportUnsupportedError, match="stops at torch.export on the region proposal network"):
        export_onnx(loaded, tmp_path / "frcnn.onnx")
    assert not (tmp_path / "frcnn.onnx").exists()


def test_bad_files_are_clear_errors(checkpoints, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    with pytest.raises(NotOnnxError, match="notes.onnx is not an ONNX model"):
        read_exported(text)
    out = tmp_path / "shapes.onnx"
    export_onnx(checkpoints["ClassificationTask"], out, dynamo=False)
    with pytest.raises(WrongTaskError, match="shapes.onnx is a ClassificationTask model, expected a DetectionTask"):
        read_exported(out, task="DetectionTask")
    foreign = onnx.load(out)
    del foreign.metadata_props[:]
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(ForeignModelError, match="foreign.onnx has no 'mnet_vision.format'"):
        read_exported(tmp_path / "foreign.onnx")
    assert read_exported(tmp_path / "foreign.onnx", task="ClassificationTask").input_size == 32


def test_tool_exports_a_checkpoint(checkpoints, tmp_path):
    out = tmp_path / "ssd.onnx"
    result = run_tool("export.py", f"ckpt={checkpoints['DetectionTask']}", f"out={out}", "dynamo=false",
                      "nms_in_graph=true")
    assert "max abs diff" in result.stdout and "torchscript exporter" in result.stdout
    exported = read_exported(out, task="DetectionTask")
    assert exported.detector["nms_in_graph"] and "anchors" in exported.detector
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(props[DETECTOR_KEY])["kind"] == "ssd"


def test_pretrained_face_detector_with_nms_in_graph(tmp_path):
    """faceapi_ssd (sigmoid scores, letterbox + TF's legacy bilinear resize) on two demo photos through
    its own transform: the in-graph detections, mapped back to the photo, are PyTorch's faces."""
    folder = faceapi_package()  # skips, with the reason, where the package cannot be fetched
    loaded = load_pretrained("faceapi_ssd", fast=False)
    # the photos at a third of their size: the same faces, a faster letterbox resize
    photos = [np.asarray(Image.fromarray(read_rgb(folder / "demo" / name)).reduce(3))
              for name in ("sample1.jpg", "sample2.jpg")]
    tensors = [torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1))).float() / 255 for p in photos]
    transform = loaded.model.head.detector.transform
    with torch.no_grad():
        images = transform(tensors)[0].tensors
        want = loaded.model(tensors)
    out = tmp_path / "faces.onnx"
    result = export_onnx(loaded, out, images=images, nms_in_graph=True, dynamo=False)
    exported = read_exported(out, task="DetectionTask")
    assert exported.source["checkpoint"] == "pretrained:faceapi_ssd" and result.max_abs_diff <= 1e-4
    assert exported.preprocess["resize"] == "letterbox" and exported.preprocess["method"] == "tf_legacy_bilinear"
    assert exported.detector["score_converter"] == "sigmoid" and exported.input_size == 512
    np.testing.assert_allclose(exported.anchors(), loaded.model.head.anchors().numpy() * 512, atol=1e-4)
    got = dict(zip(result.outputs, _session(out).run(None, {INPUT_NAME: images.numpy()})))
    start = 0
    for photo, count, faces in zip(photos, got["num_detections"], want):
        rows = slice(start, start + int(count))
        start += int(count)
        confident = got["detection_scores"][rows] >= 0.5
        keep = faces["scores"].numpy() >= 0.5
        assert confident.sum() == keep.sum() > 0
        boxes = got["detection_boxes"][rows][confident] * (max(photo.shape[:2]) / 512)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, photo.shape[1])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, photo.shape[0])
        order = np.argsort(-got["detection_scores"][rows][confident])
        np.testing.assert_allclose(boxes[order], faces["boxes"].numpy()[keep], atol=1e-2)
        np.testing.assert_allclose(got["detection_scores"][rows][confident][order], faces["scores"].numpy()[keep],
                                   atol=1e-4)
