"""What every DataModule shares (data/base.py): the settings keywords with each format's defaults,
unknown keywords refused, the generate hook, the test->val fallback."""
import inspect

import pytest

from mnet_vision.data.base import SPLITS, named_splits, split_files
from mnet_vision.data.coco import CocoDetectionDataModule
from mnet_vision.data.identities import IdentityFolderDataModule
from mnet_vision.data.image_folder import ImageFolderDataModule
from mnet_vision.data.synthetic.datamodules import SyntheticShapesDataModule


def test_settings_take_the_formats_defaults_and_show_in_the_signature(tmp_path):
    faces = IdentityFolderDataModule(str(tmp_path))
    assert (faces.batch_size, faces.num_workers, faces.input_size) == (90, 0, 160)
    assert (faces.crops.min_crop_scale, faces.crops.crop_fraction) == (0.8, 1.0)
    coco = CocoDetectionDataModule(str(tmp_path), num_classes=3, batch_size=5, seed=7)
    assert (coco.batch_size, coco.num_workers, coco.seed) == (5, 2, 7)
    parameters = inspect.signature(IdentityFolderDataModule).parameters
    assert parameters["batch_size"].default == 90 and parameters["input_size"].default == 160
    assert "input_size" not in inspect.signature(CocoDetectionDataModule).parameters  # no square crops there
    assert "generate" not in inspect.signature(SyntheticShapesDataModule).parameters  # the subclass sets it


def test_unknown_keywords_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"ImageFolderDataModule got unexpected keyword argument\(s\) \['batchsize'\]"):
        ImageFolderDataModule(str(tmp_path), num_classes=2, batchsize=4)
    with pytest.raises(TypeError, match=r"\['input_size'\]"):
        CocoDetectionDataModule(str(tmp_path), num_classes=2, input_size=96)


def test_generate_runs_in_prepare_data_with_the_root(tmp_path):
    seen = []
    ImageFolderDataModule(str(tmp_path / "r"), num_classes=2, generate=seen.append).prepare_data()
    assert seen == [tmp_path / "r"]


def test_test_falls_back_to_val_where_its_folder_is_missing(tmp_path):
    (tmp_path / "val").mkdir()
    dm = ImageFolderDataModule(str(tmp_path), num_classes=2)
    assert [dm.source_split(s) for s in SPLITS] == ["train", "val", "val"]
    (tmp_path / "test").mkdir()
    assert dm.source_split("test") == "test"
    with pytest.raises(ValueError, match="split must be one of"):
        dm.source_split("holdout")


def test_split_names_and_files_are_checked():
    assert named_splits(["a", "b", "c"]) == {"train": "a", "val": "b", "test": "c"}
    with pytest.raises(ValueError, match="must name the train, val and test"):
        named_splits(["a", "b"])
    assert split_files(None) == {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
    with pytest.raises(ValueError, match="must name a CSV for each of"):
        split_files({"train": "t.csv"})
