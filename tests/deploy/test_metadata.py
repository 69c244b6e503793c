"""The metadata of exported files: written with onnx.helper models (no torch), read back, and each
kind of bad file a clear error naming it."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mnet_vision.deploy.metadata import (
    DETECTOR_KEY,
    FORMAT,
    FORMAT_KEY,
    META_KEY,
    PREPROCESS_KEY,
    SOURCE_KEY,
    ExportedModelError,
    ForeignModelError,
    NotOnnxError,
    WrongTaskError,
    encode_props,
    read_exported,
    set_metadata,
)


def identity_model() -> onnx.ModelProto:
    """A one-node ONNX model: ``images`` (batch, 3, 8, 8) -> ``logits`` (its ReduceMean), no metadata."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    node = helper.make_node("ReduceMean", ["images", "axes"], ["logits"], keepdims=0)
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    graph = helper.make_graph([node], "foreign", [images], [logits], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


def ours(task: str = "ClassificationTask", **extra) -> onnx.ModelProto:
    meta = {"task": task, "outputs": "logits", "class_names": ["a", "b", "c"], "input_size": 8}
    preprocess = {"kind": "classification", "size": 8, "crop_fraction": 0.875, "mean": [0.5] * 3, "std": [0.25] * 3}
    return set_metadata(identity_model(), {FORMAT_KEY: FORMAT, META_KEY: meta, PREPROCESS_KEY: preprocess,
                                           SOURCE_KEY: {"exporter": "dynamo", "max_abs_diff": 0.0}, **extra})


def test_round_trip(tmp_path):
    anchors = np.array([[0, 0, 4, 4], [2, 2, 8, 8]], np.float32)
    path = tmp_path / "m.onnx"
    onnx.save(ours("DetectionTask", **{DETECTOR_KEY: {"kind": "ssd", "anchors": anchors}}), path)
    exported = read_exported(path, task="DetectionTask")
    assert exported.task == "DetectionTask" and exported.class_names == ["a", "b", "c"]
    assert exported.input_shape == ("batch", 3, 8, 8) and exported.outputs == ("logits",)
    assert exported.input_size == 8 and exported.source["exporter"] == "dynamo" and not exported.foreign
    np.testing.assert_array_equal(exported.anchors(), anchors)
    assert exported.anchors().dtype == np.float32
    # every value is a JSON string in the file itself
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(props[FORMAT_KEY]) == FORMAT and json.loads(props[META_KEY])["task"] == "DetectionTask"


def test_set_metadata_replaces_and_keeps():
    model = ours()
    set_metadata(model, {SOURCE_KEY: {"exporter": "torchscript"}})
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props[SOURCE_KEY] == {"exporter": "torchscript"} and props[META_KEY]["task"] == "ClassificationTask"
    assert len(model.metadata_props) == 4
    with pytest.raises(ValueError, match="unknown metadata keys"):
        encode_props({"mnet_vision.typo": 1})


def test_not_onnx(tmp_path):
    bad = [("text.onnx", b"this is not a model\n"), ("empty.onnx", b""), ("noise.onnx", bytes(range(256)))]
    for name, content in bad:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(NotOnnxError, match=name):
            read_exported(path)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        read_exported(tmp_path / "missing.onnx")


def test_foreign_model(tmp_path):
    path = tmp_path / "foreign.onnx"
    onnx.save(identity_model(), path)
    with pytest.raises(ForeignModelError, match=f"foreign.onnx has no '{FORMAT_KEY}'"):
        read_exported(path)
    exported = read_exported(path, task="ClassificationTask")  # the caller knows the task
    assert exported.foreign and exported.task == "ClassificationTask" and exported.input_size == 8
    with pytest.raises(ExportedModelError, match="anchors is missing"):
        exported.anchors()


def test_wrong_task_and_damaged(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(ours("EmbeddingTask"), path)
    with pytest.raises(WrongTaskError, match="m.onnx is a EmbeddingTask model, expected a DetectionTask"):
        read_exported(path, task="DetectionTask")
    model = ours()
    for p in model.metadata_props:
        if p.key == META_KEY:
            p.value = "{not json"
    onnx.save(model, path)
    with pytest.raises(ExportedModelError, match=f"{META_KEY} is not JSON"):
        read_exported(path)
    model = identity_model()
    set_metadata(model, {FORMAT_KEY: FORMAT, META_KEY: {"task": "ClassificationTask"}})
    onnx.save(model, path)
    with pytest.raises(ExportedModelError, match="missing"):
        read_exported(path)
