"""face-api's face nets exported to ONNX: checked against PyTorch at the default atol, their metadata (task,
outputs, input size, face-api's transform, the source weights' sha256), age/gender's dict as two named outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mnet_vision.deploy.metadata import WrongTaskError, read_exported
from mnet_vision.deploy.runtime import load_onnx
from mnet_vision.inference.export import weights_sha256
from mnet_vision.pretrained.faceapi_input import INPUT_SIZES
from mnet_vision.pretrained.models import load_pretrained
from tests.helpers.faceapi_onnx import FACE_NETS, faceapi_onnx

EXPECTED = {"faceapi_landmarks68": ("FaceLandmarks", "landmarks", ("landmarks",), "landmarks68"),
            "faceapi_descriptor": ("FaceDescriptor", "embedding", ("embedding",), "descriptor"),
            "faceapi_expression": ("FaceExpression", "probabilities", ("probabilities",), "expression"),
            "faceapi_age_gender": ("FaceAgeGender", "age_gender", ("age", "gender"), "age_gender")}


@pytest.mark.parametrize("name", FACE_NETS)
def test_a_face_net_exports_with_its_task_outputs_size_and_transform(name):
    task, outputs, graph_outputs, net = EXPECTED[name]
    result = faceapi_onnx(name)
    assert result.max_abs_diff <= 1e-4 and result.exporter == "torchscript" and result.outputs == graph_outputs
    exported = read_exported(result.path, task)
    size = INPUT_SIZES[net]
    assert exported.meta["outputs"] == outputs and exported.input_size == size
    assert exported.meta["transform"] == {"kind": "faceapi", "input_size": size}
    assert exported.preprocess["kind"] == "faceapi" and exported.preprocess["size"] == size
    assert exported.input_shape == ("batch", 3, size, size)
    # the weights it came from, by the same digest the face pipeline records of a PyTorch describer
    assert exported.source["pretrained"] == name
    assert exported.source["weights_sha256"] == weights_sha256(load_pretrained(name, fast=False))


def test_age_gender_runs_in_onnx_runtime_as_in_pytorch():
    model = load_onnx(faceapi_onnx("faceapi_age_gender").path, task="FaceAgeGender")
    images = torch.rand(5, 3, 112, 112, generator=torch.Generator().manual_seed(0))  # a batch of 5: dynamic
    got = model.run(images.numpy())
    with torch.no_grad():
        want = load_pretrained("faceapi_age_gender", fast=False).model(images)
    assert got["age"].shape == (5,) and got["gender"].shape == (5, 2)
    np.testing.assert_allclose(got["age"], want["age"].numpy(), atol=1e-4)  # years
    np.testing.assert_allclose(got["gender"], want["gender"].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["gender"].sum(1), 1.0, atol=1e-5)


def test_a_face_net_file_of_another_task_is_refused_naming_both():
    path = faceapi_onnx("faceapi_descriptor").path
    with pytest.raises(WrongTaskError, match=r"faceapi_descriptor\.onnx is a FaceDescriptor model, expected a "
                                             r"FaceLandmarks model"):
        load_onnx(path, task="FaceLandmarks")
