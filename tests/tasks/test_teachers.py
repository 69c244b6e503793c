"""The pretrained (face-api) teacher: its outputs equal the face nets' own on the same real crops,
through either input path, its shapes are checked against the student when the distillation is built,
and names that are no teacher are refused before anything is fetched."""
import numpy as np
import pytest
import torch

from mnet_vision.config import compose
from mnet_vision.data.identities import FACENET_MEAN, FACENET_STD
from mnet_vision.images import read_rgb
from mnet_vision.pretrained.faceapi_input import faceapi_net_input
from mnet_vision.pretrained.models import load_pretrained
from mnet_vision.tasks.teachers import PretrainedTeacher, pretrained_teacher
from mnet_vision.training import build_task
from tests.helpers.configs import tiny_identity_overrides
from tests.helpers.pretrained import faceapi_package

NETS = ["faceapi_descriptor", "faceapi_age_gender", "faceapi_expression"]
# Three faces of demo/sample1.jpg (their centres, from face-api's detector at score 0.5), cut as 160 px
# squares: what a 160 px student sees.
FACE_CENTRES = [(502, 474), (931, 534), (1577, 320)]
SIDE = 160


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rgb = read_rgb(faceapi_package() / "demo" / "sample1.jpg")
    half = SIDE // 2
    return np.stack([rgb[y - half:y + half, x - half:x + half] for x, y in FACE_CENTRES])


@pytest.fixture(scope="module")
def teacher() -> PretrainedTeacher:
    faceapi_package()  # skips, with the reason, when the package cannot be fetched
    return pretrained_teacher(NETS, FACENET_MEAN, FACENET_STD)


def _normalised(crops: np.ndarray) -> torch.Tensor:
    """The student's batch: (N, 3, S, S) crops in [0, 1], normalised (x - mean) / std."""
    pixels = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    return (pixels - torch.tensor(FACENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(FACENET_STD).view(1, 3, 1, 1)


def _faceapi(name: str, crops: np.ndarray):
    loaded = load_pretrained(name)
    with torch.no_grad():
        return loaded.model(torch.stack([faceapi_net_input(c, loaded.meta.input_size) for c in crops]))


def test_outputs_equal_the_face_nets_on_the_same_crops(teacher, crops):
    out = teacher.outputs({"image": _normalised(crops)})
    assert sorted(out) == ["age", "embedding", "expression", "gender"]
    descriptor, age_gender = _faceapi("faceapi_descriptor", crops), _faceapi("faceapi_age_gender", crops)
    # un-normalising costs float32 rounding (~1e-7 of a pixel), far below the nets' 1e-5 parity with face-api
    torch.testing.assert_close(out["embedding"], descriptor, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["age"], age_gender["age"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out["gender"], age_gender["gender"], atol=1e-6, rtol=0)
    torch.testing.assert_close(out["expression"], _faceapi("faceapi_expression", crops), atol=1e-6, rtol=0)
    assert out["embedding"].shape == (3, 128) and out["age"].shape == (3,) and out["expression"].shape == (3, 7)


def test_a_teacher_view_is_read_instead_of_the_student_image(crops):
    faceapi_package()
    view = torch.stack([faceapi_net_input(c, 150) for c in crops])
    teacher = pretrained_teacher(["faceapi_descriptor"], FACENET_MEAN, FACENET_STD, view="teacher_image")
    out = teacher.outputs({"image": torch.zeros(3, 3, 32, 32), "teacher_image": view})  # image is ignored
    torch.testing.assert_close(out["embedding"], _faceapi("faceapi_descriptor", crops), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="'teacher_image'.*batch has only \\['image'\\]"):
        teacher.outputs({"image": view})


def test_log_probabilities_are_logits_up_to_a_constant(teacher, crops):
    logs = PretrainedTeacher(teacher.nets, FACENET_MEAN, FACENET_STD, probabilities=False)
    out, probs = logs.outputs({"image": _normalised(crops)}), teacher.outputs({"image": _normalised(crops)})
    torch.testing.assert_close(torch.softmax(out["expression"], 1), probs["expression"], atol=1e-6, rtol=0)
    torch.testing.assert_close(out["gender"].exp(), probs["gender"], atol=1e-6, rtol=0)


def test_a_normalised_embedding_is_the_descriptor_over_its_norm(teacher, crops):
    unit = PretrainedTeacher(teacher.nets, FACENET_MEAN, FACENET_STD, normalize=True)
    raw, out = teacher.outputs({"image": _normalised(crops)}), unit.outputs({"image": _normalised(crops)})
    torch.testing.assert_close(out["embedding"], raw["embedding"] / raw["embedding"].norm(dim=1, keepdim=True))
    assert (raw["embedding"].norm(dim=1) - 1).abs().min() > 0.1  # face-api's descriptors are not unit vectors


def test_shapes_checked_against_the_student_when_built(tmp_path):
    faceapi_package()
    teacher = ["distill=embedding_l2", "distill/teacher=faceapi"]
    task = build_task(compose(tiny_identity_overrides(tmp_path, *teacher, "task.embedding_dim=128")))
    assert task.terms["embedding"].projection is None  # 128-D student, 128-D teacher
    assert task.teacher.nets["faceapi_descriptor"].model.training is False
    with pytest.raises(Exception, match=r"'embedding'.*shape \(16,\).*\(128,\).*project=true"):
        build_task(compose(tiny_identity_overrides(tmp_path, *teacher)))  # the tiny student is 16-D


@pytest.mark.parametrize("names, match", [
    (["faceapi_ssd"], r"\['faceapi_ssd'\] are pretrained models but no teachers"),
    (["nope"], "must be distinct ones of"),
    (["faceapi_descriptor", "faceapi_descriptor"], "must be distinct"),
    ([], "must be distinct ones of"),
])
def test_names_that_are_no_teacher_are_refused(names, match):
    with pytest.raises(ValueError, match=match):
        pretrained_teacher(names, FACENET_MEAN, FACENET_STD)


def test_a_normalisation_that_is_not_three_channels_is_refused():
    with pytest.raises(ValueError, match=r"data.mean, data.std.*mean=\[0.5\]"):
        PretrainedTeacher({"faceapi_descriptor": None}, [0.5], [0.5, 0.5, 0.5])
