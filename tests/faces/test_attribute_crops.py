"""Real faces for the attribute student: face-api's padded square, the CSV set its data module reads
(training views unlabelled, val/test faces labelled with face-api's answers, equal to face-api's own in
Node), held-out photos kept apart."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnet_vision.data.attributes import AttributeCSVDataModule
from mnet_vision.faces.attribute_crops import square_face, write_attribute_crops
from mnet_vision.heads.faceapi import EXPRESSIONS, GENDERS
from mnet_vision.pretrained.faceapi_input import faceapi_net_input
from tests.helpers.pretrained import faceapi_package

ORACLE = Path(__file__).resolve().parents[1] / "data" / "oracles" / "faceapi_faces" / "outputs.json"


def test_square_face_is_faceapi_padding_of_its_crop():
    rgb = np.random.default_rng(0).integers(1, 256, size=(60, 80, 3), dtype=np.uint8)
    square = square_face(rgb, (10, 5, 31, 20))  # 31 wide, 20 high: 11 rows of black, 5 above (JS rounding), 6 below
    assert square.shape == (31, 31, 3) and square.dtype == np.uint8
    np.testing.assert_array_equal(square, (faceapi_net_input(rgb[5:25, 10:41], 31) * 255).round().byte()
                                  .permute(1, 2, 0).numpy())
    assert (square[:5] == 0).all() and (square[25:] == 0).all() and (square[5:25] == rgb[5:25, 10:41]).all()


def test_the_set_of_real_faces_is_read_by_the_attribute_data_module(faceapi_pipeline, tmp_path):
    demo = faceapi_package() / "demo"
    synthetic = tmp_path / "synthetic" / "train"
    for person in ("id00000", "id00001"):
        (synthetic / person).mkdir(parents=True)
        Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(synthetic / person / f"{person}_0001.png")
    root = tmp_path / "crops"
    counts = write_attribute_crops([demo / "sample1.jpg"], [demo / "sample5.jpg"], root, faceapi_pipeline, variants=2,
                                   size=48, synthetic=synthetic, progress=False)
    oracle = json.loads(ORACLE.read_text())["photos"]
    assert counts == {"train": 2 * len(oracle["sample1"]["faces"]["cpu"]) + 2,
                      "val": len(oracle["sample1"]["faces"]["cpu"]), "test": len(oracle["sample5"]["faces"]["cpu"])}
    dm = AttributeCSVDataModule(str(root), num_attributes=0, regression=["age"],
                                categorical={"gender": list(GENDERS), "expression": list(EXPRESSIONS)},
                                input_size=32, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert np.isnan(dm.train_set.table.targets["age"]).all() and (dm.train_set.table.targets["gender"] == -1).all()
    # the labels are face-api's own answers in Node, face for face (both lists best score first)
    for split, photo in (("val", "sample1"), ("test", "sample5")):
        faces, targets = oracle[photo]["faces"]["cpu"], getattr(dm, f"{split}_set").table.targets
        np.testing.assert_allclose(targets["age"], [f["age"] for f in faces], atol=0.01)
        assert [GENDERS[g] for g in targets["gender"]] == [f["gender"] for f in faces]
        assert targets["expression"].tolist() == [int(np.argmax(f["expressions"])) for f in faces]
    assert Image.open(root / "test_faces" / "sample5_face0.png").size[0] == Image.open(
        root / "test_faces" / "sample5_face0.png").size[1]
    with pytest.raises(ValueError, match="both training and held-out photos"):
        write_attribute_crops([demo / "sample1.jpg"], [demo / "sample1.jpg"], tmp_path / "again", faceapi_pipeline)
