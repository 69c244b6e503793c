"""TF OD API ssd_mobilenet_v1 names onto MobileNetV1 + SSD300Head: layouts on known arrays, the
real face-api file placed completely, and the files that are not an ssd_mobilenet_v1 named."""
import numpy as np
import pytest

from mnet_vision.config import compose
from mnet_vision.model import build_model
from mnet_vision.tfjs.ssd_mobilenet_v1 import TFNameError, ssd_mobilenet_v1_state_dict
from mnet_vision.tfjs.weights import read_weights
from tests.helpers.pretrained import faceapi_package

MANIFEST = "model/ssd_mobilenetv1_model-weights_manifest.json"


def test_filters_move_from_hwio_and_depthwise_hwc1_to_oihw():
    hwio = np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4)
    dw = np.arange(3 * 3 * 5, dtype=np.float32).reshape(3, 3, 5, 1)
    state = ssd_mobilenet_v1_state_dict({"MobilenetV1/Conv2d_0_pointwise/weights": hwio,
                                         "MobilenetV1/Conv2d_1_depthwise/depthwise_weights": dw}, 1, "f").state
    stem = state["backbone.features.conv0.conv.weight"]
    assert stem.shape == (4, 2, 3, 3) and stem[3, 1, 2, 0] == hwio[2, 0, 1, 3]
    depthwise = state["backbone.features.conv1.dw.conv.weight"]
    assert depthwise.shape == (5, 1, 3, 3) and depthwise[4, 0, 1, 2] == dw[1, 2, 4, 0]


def test_folded_batchnorm_offset_loads_as_an_identity_batchnorm_with_a_bias():
    offset = np.array([0.5, -2.0], np.float32)
    state = ssd_mobilenet_v1_state_dict({"MobilenetV1/Conv2d_3_pointwise/convolution_bn_offset": offset}, 1, "f",
                                        eps=1e-3).state
    bn = {k.rpartition(".")[2]: v for k, v in state.items() if k.startswith("backbone.features.conv3.pw.bn.")}
    np.testing.assert_array_equal(bn["bias"], offset)
    np.testing.assert_array_equal(bn["weight"], [1, 1])
    np.testing.assert_array_equal(bn["running_mean"], [0, 0])
    np.testing.assert_allclose(np.sqrt(bn["running_var"].astype(np.float64) + 1e-3), 1.0, rtol=1e-7)


def test_box_codes_reorder_yxhw_to_xywh_and_logits_keep_the_configured_columns():
    # 2 anchors: box channels a*4 + (ty, tx, th, tw); logits a*3 + (background, face, unused)
    boxes = np.arange(8, dtype=np.float32)
    logits = np.arange(6, dtype=np.float32) * 10
    state = ssd_mobilenet_v1_state_dict({"MobilenetV1/Conv2d_0_pointwise/weights": np.zeros((3, 3, 3, 2), np.float32),
                                         "Prediction/BoxPredictor_0/BoxEncodingPredictor/biases": boxes,
                                         "Prediction/BoxPredictor_0/ClassPredictor/biases": logits}, 1, "f").state
    np.testing.assert_array_equal(state["head.detector.head.regression_head.module_list.0.bias"],
                                  [1, 0, 3, 2, 5, 4, 7, 6])
    np.testing.assert_array_equal(state["head.detector.head.classification_head.module_list.0.bias"],
                                  [0, 10, 30, 40])
    with pytest.raises(TFNameError, match="fewer than the 4"):
        ssd_mobilenet_v1_state_dict({"MobilenetV1/Conv2d_0_pointwise/weights": np.zeros((3, 3, 3, 2), np.float32),
                                     "Prediction/BoxPredictor_0/BoxEncodingPredictor/biases": boxes,
                                     "Prediction/BoxPredictor_0/ClassPredictor/biases": logits}, 3, "f")


def test_the_real_face_detector_places_every_tensor_and_fills_every_key():
    weights = read_weights(faceapi_package() / MANIFEST)
    conversion = ssd_mobilenet_v1_state_dict(weights, 1, MANIFEST)
    model = build_model(compose(["experiment=faceapi_ssd"]))
    own = model.state_dict()
    assert set(conversion.state) == set(own)
    assert all(tuple(own[k].shape) == conversion.state[k].shape for k in own)
    assert set(conversion.constants) == {"anchors", "input_size", "input_scale", "input_offset", "score_slice_begin"}
    assert len(conversion.ignored) == 13  # reshape / stack / slice / concat arguments of the graph
    placed = len(weights) - len(conversion.constants) - len(conversion.ignored)
    assert placed == 133  # stem 2 + 13 blocks x 7 (dw, its BN x 4, pw, offset) + 8 extra layers x 2 + 6 predictors x 4


def test_another_architecture_or_an_unknown_tensor_is_named():
    folder = faceapi_package()
    with pytest.raises(TFNameError, match="is not a TF ssd_mobilenet_v1 model.*dense0/conv0/filters"):
        ssd_mobilenet_v1_state_dict(read_weights(folder / "model/face_landmark_68_model-weights_manifest.json"), 1,
                                    "landmarks.json")
    weights = read_weights(folder / MANIFEST)
    weights["Prediction/BoxPredictor_6/ExtraPredictor/weights"] = np.zeros(3, np.float32)
    with pytest.raises(TFNameError, match="BoxPredictor_6/ExtraPredictor/weights"):
        ssd_mobilenet_v1_state_dict(weights, 1, "detector.json")
