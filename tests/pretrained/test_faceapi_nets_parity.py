"""Parity of our ports of face-api's landmark, expression, age/gender and descriptor nets with face-api
itself, run in Node by the oracle in tests/data/oracles/faceapi_nets/ (TF.js cpu backend; its README
has the noise floor, cpu vs wasm).

The inputs are rebuilt here by the oracle's own recipe (make_oracle.oracle_inputs: the three faces of
demo/sample1.jpg at face-api's detector boxes, as cut and squared to 112 / 150, and two synthetic
squares) and checked byte for byte against the ones the oracle saw. Each goes through our face-api
input pipeline (pad to a centred square, TF's legacy bilinear resize) and our module, as imported and
folded for serving, and must give face-api's outputs within the issue's bars: landmarks 0.01 px,
descriptors 1e-4, age 0.01 year, probabilities 1e-5."""
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mnet_vision.heads.faceapi import EXPRESSIONS
from mnet_vision.pretrained.faceapi_input import INPUT_SIZES, faceapi_net_input, landmarks_in_crop
from mnet_vision.pretrained.models import load_pretrained
from tests.helpers.pretrained import faceapi_package

ORACLE = Path(__file__).resolve().parents[1] / "data" / "oracles" / "faceapi_nets"
DOC = json.loads((ORACLE / "outputs.json").read_text())
LANDMARK_PX, DESCRIPTOR, AGE_YEARS, PROBABILITY = 0.01, 1e-4, 0.01, 1e-5


def _oracle_recipe():
    spec = importlib.util.spec_from_file_location("faceapi_nets_make_oracle", ORACLE / "make_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def inputs():
    rebuilt = _oracle_recipe().oracle_inputs(faceapi_package())  # skips, with the reason, without the package
    for name, item in rebuilt.items():
        assert hashlib.sha256(item["rgb"].tobytes()).hexdigest() == DOC["inputs"][name]["rgb_sha256"], (
            f"{name}: the recipe no longer gives the bytes the oracle saw; rerun make_oracle.py")
    assert set(rebuilt) == set(DOC["inputs"])
    return rebuilt


@pytest.fixture(scope="module", params=[False, True], ids=["as-imported", "folded"])
def models(request):
    faceapi_package()
    torch.manual_seed(0)
    return {net: load_pretrained(f"faceapi_{net}", fast=request.param) for net in INPUT_SIZES}


def _run(models, inputs, net):
    """Our outputs for every input the oracle ran ``net`` on: names, crops, outputs (one batch)."""
    names = [name for name, item in inputs.items() if net in item["nets"]]
    batch = torch.stack([faceapi_net_input(inputs[name]["rgb"], INPUT_SIZES[net]) for name in names])
    loaded = models[net]
    with torch.no_grad():
        return names, loaded.model(loaded.inputs(batch))


def _theirs(name, net):
    return DOC["inputs"][name]["outputs"]["cpu"][net]


def test_landmarks_match_faceapi(models, inputs):
    names, ours = _run(models, inputs, "landmarks68")
    assert ours.shape == (len(names), 68, 2)
    for name, points in zip(names, ours, strict=True):
        theirs = _theirs(name, "landmarks68")
        raw = np.asarray(theirs["raw"]).reshape(68, 2)
        assert np.abs(points.numpy() - raw).max() * 112 <= LANDMARK_PX, name  # pixels of the 112x112 input
        rgb = inputs[name]["rgb"]
        in_crop = landmarks_in_crop(points.double(), rgb.shape[1], rgb.shape[0]).numpy()
        assert np.abs(in_crop - np.asarray(theirs["positions"])).max() <= LANDMARK_PX, name  # crop pixels


def test_expressions_match_faceapi(models, inputs):
    names, ours = _run(models, inputs, "expression")
    for name, probabilities in zip(names, ours, strict=True):
        theirs = np.asarray(_theirs(name, "expression")["probabilities"])
        assert np.abs(probabilities.numpy() - theirs).max() <= PROBABILITY, name
        assert EXPRESSIONS[int(probabilities.argmax())] == EXPRESSIONS[int(theirs.argmax())]
    assert float(ours.sum(dim=1).sub(1).abs().max()) < 1e-5


def test_age_and_gender_match_faceapi(models, inputs):
    names, ours = _run(models, inputs, "age_gender")
    for i, name in enumerate(names):
        theirs = _theirs(name, "age_gender")
        assert abs(float(ours["age"][i]) - theirs["age"]) <= AGE_YEARS, name
        assert np.abs(ours["gender"][i].numpy() - theirs["gender"]).max() <= PROBABILITY, name
        male = float(ours["gender"][i, 0]) > 0.5  # face-api: probMale = gender[0]
        assert theirs["prediction"]["gender"] == ("male" if male else "female"), name


def test_descriptors_match_faceapi(models, inputs):
    names, ours = _run(models, inputs, "descriptor")
    theirs = np.stack([_theirs(name, "descriptor")["descriptor"] for name in names])
    assert ours.shape == (len(names), 128)
    assert np.abs(ours.numpy() - theirs).max() <= DESCRIPTOR
    distances = np.linalg.norm(theirs[:, None] - theirs[None], axis=-1)
    ours_distances = torch.cdist(ours.double(), ours.double()).numpy()
    assert np.abs(ours_distances - distances).max() <= 2 * DESCRIPTOR
    # one face as cut and as squared by PIL lies far nearer itself (face-api: < 0.05) than any other face
    # (0.42 - 0.51 on these unaligned crops: below face-api's 0.6, which assumes aligned ones)
    for k in range(3):
        crop = names.index(f"face{k}_crop")
        same = ours_distances[crop, names.index(f"face{k}_150")]
        others = [ours_distances[crop, names.index(f"face{j}_crop")] for j in range(3) if j != k]
        assert same < 0.05 < 0.4 < min(others)


def test_the_oracle_noise_floor_is_below_the_bars():
    """cpu vs wasm inside face-api: what float32 arithmetic alone moves; the bars sit above it."""
    bars = {"landmarks68.raw": LANDMARK_PX / 112, "landmarks68.positions": LANDMARK_PX, "expression.probabilities":
            PROBABILITY, "age_gender.age": AGE_YEARS, "age_gender.gender": PROBABILITY,
            "descriptor.descriptor": DESCRIPTOR}
    for name, entry in DOC["inputs"].items():
        for output, floor in entry["noise_floor_cpu_vs_wasm"].items():
            assert floor < bars[output], (name, output, floor)
