"""deploy.runtime: exported tiny models (export_onnx) run by ONNX Runtime give the PyTorch model's
detections and logits; the path imports no torch; bad models and inputs are named."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from mnet_vision.config import compose
from mnet_vision.data.transforms import apply_seeded
from mnet_vision.deploy.metadata import ForeignModelError, NotOnnxError, WrongTaskError
from mnet_vision.deploy.runtime import is_onnx_path, load_onnx
from mnet_vision.inference.export import export_onnx
from mnet_vision.inference.load import LoadedModel, read_metadata
from mnet_vision.model import build_model
from tests.helpers.faceapi_onnx import faceapi_onnx
from tests.helpers.models import randomise_batchnorm

pytest.importorskip("onnxruntime", reason="the deploy path runs on onnxruntime (pip install mnet_vision[deploy])")

SSD = ["task=ssd300", "task.input_size=64", "backbone.alpha=0.25", "task.num_classes=3", "task.head.score_thresh=0.05"]
# TF.js's face detector's settings: sigmoid scores, NMS across classes, letterbox + TF's legacy resize
TF_SSD = [*SSD, "task.head.score_converter=sigmoid", "task.head.class_agnostic_nms=true", "task.head.score_thresh=0.3",
          "task.head.resize=letterbox", "task.head.resize_method=tf_legacy_bilinear"]
CLASSIFIER = ["experiment=shapes", "task.input_size=32", "backbone.alpha=0.25"]
# (H, W): wider, taller, square, smaller and larger than the input
SHAPES = [(50, 70), (64, 64), (90, 40), (30, 33), (120, 100)]


def _exported(tmp_path_factory, overrides, name, **export):
    """An untrained tiny model (random BatchNorm statistics) and its export. The TorchScript
    exporter: 2 s where dynamo takes 20-30 s, and the same graph outputs within export_onnx's check
    (tests/inference/test_export.py tests the dynamo exporter)."""
    cfg = compose(overrides)
    model = randomise_batchnorm(build_model(cfg)).eval().requires_grad_(False)
    loaded = LoadedModel(model, cfg, read_metadata({}, cfg, name, model), source=name)
    path = export_onnx(loaded, tmp_path_factory.mktemp(name) / f"{name}.onnx", dynamo=False, **export).path
    return loaded, path


@pytest.fixture(scope="module")
def ssd(tmp_path_factory):
    return _exported(tmp_path_factory, SSD, "ssd")


@pytest.fixture(scope="module")
def tf_ssd(tmp_path_factory):
    return _exported(tmp_path_factory, TF_SSD, "tf_ssd")


@pytest.fixture(scope="module")
def nms_ssd(tmp_path_factory):
    return _exported(tmp_path_factory, SSD, "nms_ssd", nms_in_graph=True)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return _exported(tmp_path_factory, CLASSIFIER, "classifier")


def _images(seed=0):
    rng = np.random.default_rng(seed)
    # smooth images (a few blobs on noise) so that the detector's scores spread
    return [np.clip(rng.normal(128, 60, (h, w, 3)), 0, 255).astype(np.uint8) for h, w in SHAPES]


def _torch_detections(model, images):
    with torch.no_grad():
        out = model([torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).float() / 255.0 for im in images])
    return [{k: v.numpy() for k, v in det.items()} for det in out]


def _assert_same_detections(ours, theirs):
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert len(o["scores"]) == len(t["scores"]) > 0
        np.testing.assert_array_equal(o["labels"], t["labels"])
        np.testing.assert_allclose(o["boxes"], t["boxes"], rtol=0, atol=1e-3)
        np.testing.assert_allclose(o["scores"], t["scores"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["ssd", "tf_ssd", "nms_ssd"])
def test_detect_gives_the_pytorch_detections(name, request):
    loaded, path = request.getfixturevalue(name)
    model = load_onnx(path, threads=1)
    assert model.task == "DetectionTask" and model.input_size == 64
    images = _images()
    _assert_same_detections(model.detect(images), _torch_detections(loaded.model, images))
    assert model.detect([]) == []


def test_classify_gives_the_pytorch_logits(classifier):
    loaded, path = classifier
    model = load_onnx(path, threads=1, task="ClassificationTask")
    images = _images(1)
    transform = loaded.meta.eval_transform()
    with torch.no_grad():
        theirs = loaded.model(torch.stack([apply_seeded(transform, 0, image=im)["image"] for im in images])).numpy()
    ours = model.classify(images)
    assert ours.shape == (len(images), 10)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    assert (ours.argmax(1) == theirs.argmax(1)).all()


BLOCKER = """
import importlib.abc, json, sys
BLOCKED = {"torch", "torchvision", "albumentations", "lightning", "pytorch_lightning", "torchmetrics"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"deploy imported {name}")
sys.meta_path.insert(0, Block())
import numpy as np
from mnet_vision.deploy.runtime import load_onnx
from mnet_vision.images import read_rgb
model = load_onnx(sys.argv[1], threads=1)
found = model.detect([read_rgb(p) for p in sys.argv[2:]])
assert not BLOCKED & {m.split(".")[0] for m in sys.modules}, sorted(sys.modules)
print(json.dumps([{k: v.tolist() for k, v in d.items()} for d in found]))
"""


def test_the_onnx_path_imports_no_torch(ssd, tmp_path):
    from PIL import Image

    loaded, path = ssd
    images = _images(2)[:2]
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(files[-1])
    done = subprocess.run([sys.executable, "-c", BLOCKER, str(path), *map(str, files)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0, done.stderr
    found = [{k: np.asarray(v) for k, v in d.items()} for d in json.loads(done.stdout)]
    _assert_same_detections(found, _torch_detections(loaded.model, images))


def test_wrong_inputs_tasks_and_files_are_named(ssd, classifier, tmp_path):
    _, path = ssd
    model = load_onnx(path, threads=1)
    with pytest.raises(ValueError, match=r"input images of shape \(1, 3, 32, 32\); this model takes \(N, 3, 64, 64\)"):
        model.run(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="input images are float64; this model takes float32"):
        model.run(np.zeros((1, 3, 64, 64)))
    with pytest.raises(ValueError, match="has no output 'logits'"):
        model.classify(_images()[:1])
    with pytest.raises(ValueError, match="no 'mnet_vision.geo' metadata entry"):
        model.geolocate(_images()[:1])
    with pytest.raises(WrongTaskError, match="is a DetectionTask model, expected a EmbeddingTask model"):
        load_onnx(path, task="EmbeddingTask")
    with pytest.raises(ValueError, match="no 'mnet_vision.detector' metadata entry"):
        load_onnx(classifier[1]).detect(_images()[:1])
    with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
        load_onnx(path, threads=0)
    text = tmp_path / "model.onnx"
    text.write_text("not a model")
    with pytest.raises(NotOnnxError, match="model.onnx is not an ONNX model"):
        load_onnx(text)


def test_a_foreign_model_runs_only_when_given_its_task(tmp_path):
    graph = helper.make_graph([helper.make_node("ReduceMean", ["images", "axes"], ["logits"], keepdims=0)], "foreign",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    with pytest.raises(ForeignModelError, match="has no 'mnet_vision.format' metadata entry"):
        load_onnx(path)
    model = load_onnx(path, task="ClassificationTask")
    images = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(model.run(images)["logits"], images.mean(axis=(2, 3)), rtol=1e-6)
    with pytest.raises(ValueError, match="has no 'mnet_vision.preprocess' metadata entry .* OnnxModel.run"):
        model.classify(_images()[:1])


def test_onnx_paths_are_told_by_their_suffix():
    assert is_onnx_path("model.onnx") and is_onnx_path(Path("a/B.ONNX"))
    assert not is_onnx_path("last.ckpt") and not is_onnx_path(None)


def test_a_faceapi_net_runs_on_prepared_crops_and_refuses_photos():
    # face-api's descriptor: run() takes the (N, 3, 150, 150) crops faceapi_net_input makes; preprocess() of photos
    # would need torch's TF-legacy resize, so it says where to go instead of guessing
    model = load_onnx(faceapi_onnx("faceapi_descriptor").path, task="FaceDescriptor")
    assert model.input_size == 150 and model.output_names == ["embedding"]
    assert model.run(np.zeros((2, 3, 150, 150), np.float32))["embedding"].shape == (2, 128)
    with pytest.raises(ValueError, match=r"faceapi_descriptor\.onnx is face-api's FaceDescriptor net: preprocess its "
                                         r"face crops with .*faceapi_net_input"):
        model.preprocess([np.zeros((64, 64, 3), np.uint8)])
