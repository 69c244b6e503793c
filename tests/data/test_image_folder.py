import shutil

import pytest
import torch

from mnet_vision.data.image_folder import ImageFolderDataModule, ImageFolderDataset
from mnet_vision.images import ImageReadError
from mnet_vision.data.skipping import collate_skipping
from mnet_vision.data.transforms import classification_eval_transform


@pytest.fixture
def tree(tmp_path, shapes_root):
    """A copy of the tiny shapes set the test may damage."""
    root = tmp_path / "tree"
    shutil.copytree(shapes_root, root)
    return root


def _module(root, **kw):
    kw = {"num_classes": 10, "input_size": 32, "batch_size": 8, "num_workers": 0, **kw}
    return ImageFolderDataModule(str(root), **kw)


def test_reads_splits(tree):
    dm = _module(tree)
    dm.setup("fit")
    assert len(dm.train_set) == 60 and len(dm.val_set) == 30 and len(dm.test_set) == 30
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["skipped"] == []
    assert dm.classes[0] == "circle"


def test_test_split_falls_back_to_val(tree):
    shutil.rmtree(tree / "test")
    dm = _module(tree)
    dm.setup("test")
    assert dm.test_set.samples == dm.val_set.samples


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data root .*nowhere does not exist; expected layout"):
        _module(tmp_path / "nowhere").setup("fit")


def test_empty_class_folder_is_named(tree):
    for f in (tree / "train" / "star").iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match="star"):
        _module(tree).setup("fit")


def test_class_count_must_match_config(tree):
    with pytest.raises(ValueError, match="has 10 class folders but the model is configured for data.num_classes=12"):
        _module(tree, num_classes=12).setup("fit")


def test_val_classes_must_match_train(tree):
    shutil.rmtree(tree / "val" / "ring")
    with pytest.raises(ValueError, match=r"missing \['ring'\]"):
        _module(tree).setup("fit")


def _corrupt_one(tree):
    bad = sorted((tree / "train" / "circle").iterdir())[0]
    bad.write_bytes(b"\xff\xd8 truncated junk")
    return bad


def test_unreadable_image_is_a_counted_skip(tree):
    bad = _corrupt_one(tree)
    ds = ImageFolderDataset(tree / "train", classification_eval_transform(32))
    samples = [ds[i] for i in range(3)]
    assert samples[0] == {"skipped": str(bad), "error": samples[0]["error"]} and str(bad) in samples[0]["error"]
    batch = collate_skipping(samples)
    assert batch["image"].shape[0] == 2 and batch["skipped"] == [str(bad)]
    assert torch.equal(batch["label"], torch.tensor([0, 0]))


def test_all_skipped_batch_has_no_images(tree):
    bad = _corrupt_one(tree)
    ds = ImageFolderDataset(tree / "train", classification_eval_transform(32))
    batch = collate_skipping([ds[0]])
    assert "image" not in batch and batch["skipped"] == [str(bad)]


def test_strict_fails_fast_naming_the_file(tree):
    bad = _corrupt_one(tree)
    ds = ImageFolderDataset(tree / "train", classification_eval_transform(32), strict=True)
    with pytest.raises(ImageReadError, match=bad.name):
        ds[0]


def test_split_without_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "loose.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has no class sub-folders; expected layout"):
        ImageFolderDataset(tmp_path / "train")
