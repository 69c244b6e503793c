"""load_pretrained: the face-api detector, ready, on real photos; a cache without it is named."""
import numpy as np
import pytest
import torch

from mnet_vision.images import read_rgb
from mnet_vision.model import DetectorModel
from mnet_vision.pretrained.fetch import FetchError
from mnet_vision.pretrained.models import PRETRAINED, load_pretrained
from tests.helpers.pretrained import faceapi_package


@pytest.fixture(scope="module")
def detector():
    faceapi_package()  # skips, with the reason, where the package cannot be fetched
    return load_pretrained("faceapi_ssd")


def test_faceapi_ssd_finds_the_three_faces_of_sample1(detector):
    assert isinstance(detector.model, DetectorModel) and detector.fast
    assert detector.meta.class_names == ["__background__", "face"] and detector.meta.input_size == 512
    rgb = read_rgb(faceapi_package() / "demo/sample1.jpg")
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255
    with torch.inference_mode():
        (out,) = detector.model([image])
    keep = out["scores"] >= 0.5
    assert int(keep.sum()) == 3 and out["scores"][keep].min() > 0.98  # three women, each face plainly visible
    boxes = out["boxes"][keep]
    assert boxes[:, 0::2].max() <= rgb.shape[1] and boxes[:, 1::2].max() <= rgb.shape[0]
    assert ((boxes[:, 2] - boxes[:, 0]) > 100).all()  # faces of ~200 px in a 1920 x 1280 photo


def test_an_empty_cache_without_download_names_the_tool(tmp_path):
    with pytest.raises(FetchError, match="tools/pretrained.py name=faceapi"):
        load_pretrained("faceapi_ssd", cache=tmp_path, download=False)
    with pytest.raises(ValueError, match="faceapi_ssd"):
        load_pretrained("yolo")
    assert set(PRETRAINED) == {"faceapi_ssd", "faceapi_landmarks68", "faceapi_expression", "faceapi_age_gender",
                               "faceapi_descriptor"}
