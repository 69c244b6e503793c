"""face-api's face-net names onto our modules: every tensor of each net placed (a round trip through TF's
layouts, no package needed), another net's file refused naming it, an unplaced tensor named; and the
package's own four files identified and loaded strictly (skipped without the package)."""
import re

import numpy as np
import pytest
import torch

from mnet_vision.pretrained.faceapi_nets import ARCHITECTURES, build_faceapi_net, load_faceapi_net
from mnet_vision.tfjs.faceapi_nets import NETS, FaceApiNameError, faceapi_state_dict, identify
from mnet_vision.tfjs.weights import read_weights
from tests.helpers.pretrained import faceapi_package


def tf_weights(net: str, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """Random weights of our ``net`` and the same values under face-api's names and TF's layouts (written
    from face-api's source here, independently of the mapping under test)."""
    torch.manual_seed(seed)
    ours = {k: torch.randn_like(v) for k, v in build_faceapi_net(net).state_dict().items()}
    tf = {}
    for key, value in ours.items():
        v = value.numpy()
        part, rest = key.split(".", 1)
        if part == "head":
            module, leaf = rest.rsplit(".", 1)
            prefix = "fc" if module == "fc" else f"fc/{module}"
            if net == "descriptor":
                tf["fc"] = v.T
            else:
                tf[f"{prefix}/{'weights' if leaf == 'weight' else 'bias'}"] = v.T if leaf == "weight" else v
            continue
        rest = re.sub(r"^middle_flow\.(\d+)\.", r"middle_flow.main_block_\1.", rest)
        path, leaf = rest.rsplit(".", 1)
        if path.endswith(".depthwise"):
            tf[path[:-10].replace(".", "/") + "/depthwise_filter"] = v.transpose(2, 3, 0, 1)
        elif path.endswith(".pointwise"):
            base = path[:-10].replace(".", "/")
            tf[base + ("/pointwise_filter" if leaf == "weight" else "/bias")] = (
                v.transpose(2, 3, 1, 0) if leaf == "weight" else v)
        elif path.endswith(".scale"):
            tf[path[:-6].replace(".", "/") + ("/scale/weights" if leaf == "weight" else "/scale/biases")] = v
        else:
            tf[path.replace(".", "/") + ("/filters" if leaf == "weight" else "/bias")] = (
                v.transpose(2, 3, 1, 0) if leaf == "weight" else v)
    return tf, ours


@pytest.mark.parametrize("net", sorted(NETS))
def test_every_tensor_lands_on_its_module(net):
    tf, ours = tf_weights(net)
    assert identify(tf) == net
    state = faceapi_state_dict(net, tf, "file.json")
    assert set(state) == set(ours)
    for key, value in ours.items():
        np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)
    build_faceapi_net(net).load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)


def test_another_nets_file_is_refused_naming_both():
    landmarks, _ = tf_weights("landmarks68")
    with pytest.raises(FaceApiNameError, match=r"x\.json is not face-api's face_recognition_model \(descriptor\).*"
                                               r"face_landmark_68_model \(landmarks68\)"):
        faceapi_state_dict("descriptor", landmarks, "x.json")
    with pytest.raises(FaceApiNameError, match=r"face_expression_model \(expression\)"):
        faceapi_state_dict("expression", landmarks, "x.json")  # same body names, an fc of 136 not 7
    detector = {"MobilenetV1/Conv2d_0_pointwise/weights": np.zeros((3, 3, 3, 32), np.float32)}
    with pytest.raises(FaceApiNameError, match=r"none of face-api's nets \(it holds MobilenetV1/Conv2d_0"):
        faceapi_state_dict("landmarks68", detector, "ssd.json")
    with pytest.raises(ValueError, match="unknown face-api net 'yolo'"):
        faceapi_state_dict("yolo", landmarks, "x.json")


def test_an_unplaced_tensor_is_named():
    tf, _ = tf_weights("age_gender")
    tf["exit_flow/extra/gamma"] = np.ones(3, np.float32)
    with pytest.raises(FaceApiNameError, match=r"1 tensors have no place .* \['exit_flow/extra/gamma'\]"):
        faceapi_state_dict("age_gender", tf, "age.json")


def test_a_wrong_layout_is_named():
    tf, _ = tf_weights("descriptor")
    tf["conv32_down/conv/filters"] = tf["conv32_down/conv/filters"][0]
    with pytest.raises(FaceApiNameError, match="conv32_down/conv/filters: expected a 4-D HWIO filter"):
        faceapi_state_dict("descriptor", tf, "rec.json")


@pytest.mark.parametrize("net", sorted(ARCHITECTURES))
def test_the_package_files_load_strictly(net):
    manifest = faceapi_package() / "model" / f"{NETS[net][0]}-weights_manifest.json"
    assert identify(read_weights(manifest)) == net
    model = load_faceapi_net(net, manifest)
    assert not model.training
    other = "descriptor" if net != "descriptor" else "landmarks68"
    with pytest.raises(FaceApiNameError, match=f"is not face-api's {NETS[other][0]}"):
        load_faceapi_net(other, manifest)
