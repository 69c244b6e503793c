"""Attribute files (CelebA layout, CSV) and their data modules, on small files written here."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnet_vision.data.attributes import (AttributeCSVDataModule, CelebADataModule, read_attribute_csv,
                                         read_celeba_attributes, read_celeba_partition)

NAMES = ["Smiling", "Eyeglasses", "Young"]
ROWS = {  # file: (values as CelebA writes them, split)
    "000001.jpg": ("-1  1  1", 0), "000002.jpg": (" 1 -1  1", 0), "000003.jpg": (" 1  0 -1", 0),
    "000004.jpg": ("-1 -1 -1", 1), "000005.jpg": (" 1  1 -1", 1), "000006.jpg": (" 1 -1  1", 2),
}


def write_celeba(root: Path, rows=ROWS, names=NAMES, count=None, images=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [str(len(rows) if count is None else count), " ".join(names) + " "]
    lines += [f"{name} {values}" for name, (values, _) in rows.items()]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, (_, s) in rows.items()))
    if images:
        (root / "img_align_celeba").mkdir(exist_ok=True)
        for i, name in enumerate(rows):
            Image.fromarray(np.full((24, 20, 3), 40 * i, np.uint8)).save(root / "img_align_celeba" / name, format="PNG")
    return root


def module(cls, root, **kwargs):
    return cls(str(root), input_size=16, batch_size=4, num_workers=0, **kwargs)


def test_celeba_file_is_read_with_uneven_spacing_and_zero_as_unknown(tmp_path):
    table = read_celeba_attributes(write_celeba(tmp_path) / "list_attr_celeba.txt")
    assert table.names == NAMES and table.files[:2] == ["000001.jpg", "000002.jpg"]
    assert table.labels.dtype == np.int8
    assert table.labels[:3].tolist() == [[0, 1, 1], [1, 0, 1], [1, -1, 0]]


@pytest.mark.parametrize("edit, message", [
    (lambda lines: ["7"] + lines[1:], r"line 1: says 7 images but the file lists 6"),
    (lambda lines: ["six"] + lines[1:], r"line 1: expected the number of images"),
    (lambda lines: lines[:4] + ["000003.jpg  1  1"] + lines[5:], r"line 5: expected a file name and 3 values, found 3"),
    (lambda lines: lines[:3] + ["000002.jpg  1  2  1"] + lines[4:], r"line 4: attribute 'Eyeglasses' is '2'"),
    (lambda lines: lines[:3] + ["000002.jpg  1  yes  1"] + lines[4:], r"line 4: attribute 'Eyeglasses' is 'yes'"),
    (lambda lines: lines[:3] + ["000001.jpg  1  1  1"] + lines[4:], r"listed more than once"),
    (lambda lines: ["1"], r"found 1 line"),
])
def test_bad_celeba_attribute_files_name_the_line(tmp_path, edit, message):
    path = write_celeba(tmp_path, images=False) / "list_attr_celeba.txt"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(ValueError, match=message) as err:
        read_celeba_attributes(path)
    assert str(path) in str(err.value)


def test_partition_file(tmp_path):
    path = write_celeba(tmp_path, images=False) / "list_eval_partition.txt"
    assert read_celeba_partition(path)["000006.jpg"] == 2
    path.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt, line 2: expected '<file> <0\|1\|2>'"):
        read_celeba_partition(path)


def test_celeba_data_module_splits_and_samples(tmp_path):
    dm = module(CelebADataModule, write_celeba(tmp_path), num_attributes=3)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3, 2, 1)
    assert dm.names == NAMES and dm.sample_ids("val") == ["000004.jpg", "000005.jpg"]
    sample = dm.train_set[(2, 7)]
    assert sample["image"].shape == (3, 16, 16) and sample["id"] == "000003.jpg"
    assert sample["attributes"].tolist() == [1, -1, 0] and sample["attributes"].dtype == torch.int8
    batch = next(iter(dm.val_dataloader()))
    assert batch["attributes"].shape == (2, 3)
    positives, negatives = dm.label_counts()
    assert positives.tolist() == [2, 1, 2] and negatives.tolist() == [1, 1, 1]  # the unknown label counts in neither


def test_celeba_original_release_layout(tmp_path):
    root = write_celeba(tmp_path)
    (root / "Anno").mkdir()
    (root / "Eval").mkdir()
    (root / "list_attr_celeba.txt").rename(root / "Anno" / "list_attr_celeba.txt")
    (root / "list_eval_partition.txt").rename(root / "Eval" / "list_eval_partition.txt")
    dm = module(CelebADataModule, root, num_attributes=3, attributes_file="Anno/list_attr_celeba.txt",
                partition_file="Eval/list_eval_partition.txt")
    dm.setup("fit")
    assert len(dm.train_set) == 3


def test_celeba_errors_name_the_file(tmp_path):
    root = write_celeba(tmp_path)
    with pytest.raises(ValueError, match="has 3 attributes but the model is configured for data.num_attributes=40"):
        module(CelebADataModule, root, num_attributes=40).setup("fit")
    (root / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of the 6 images listed in .*list_attr_celeba.txt are missing from "
                                                r".*img_align_celeba \(first: \['000005.jpg'\]\)"):
        module(CelebADataModule, root, num_attributes=3).setup("fit")
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(ValueError, match=r"5 image\(s\) of .*list_attr_celeba.txt have no split in"):
        module(CelebADataModule, root, num_attributes=3).setup("fit")
    with pytest.raises(FileNotFoundError, match="expected CelebA's layout"):
        module(CelebADataModule, tmp_path / "nowhere", num_attributes=3).setup("fit")


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_csv_reads_blank_as_unknown(tmp_path):
    table = read_attribute_csv(write_csv(tmp_path / "a.csv", "path,red,round\nx/1.png,1,\nx/2.png, 0 ,1\n"))
    assert table.names == ["red", "round"] and table.files == ["x/1.png", "x/2.png"]
    assert table.labels.tolist() == [[1, -1], [0, 1]]


@pytest.mark.parametrize("text, message", [
    ("", r"is empty"),
    ("path,red\n", r"has a header but no images"),
    ("path\n1.png\n", r"line 1: expected a header 'path,attr1,attr2,...'"),
    ("path,red,round\n1.png,1\n", r"line 2: expected 3 fields \(path and 2 attributes\), found 2"),
    ("path,red,round\n1.png,1,0\n2.png,-1,0\n", r"line 3: attribute 'red' is '-1'; expected one of '1', '0', ''"),
    ("path,red,red\n1.png,1,0\n", r"attribute names repeat"),
])
def test_bad_csv_files_name_the_line(tmp_path, text, message):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=message) as err:
        read_attribute_csv(path)
    assert str(path) in str(err.value)


def test_csv_data_module(tmp_path):
    (tmp_path / "images" / "x").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((20, 20, 3), 50 * i, np.uint8)).save(tmp_path / "images" / "x" / f"{i}.png")
    write_csv(tmp_path / "train.csv", "path,red,round\nx/0.png,1,\nx/1.png,0,1\n")
    write_csv(tmp_path / "val.csv", "path,red,round\nx/2.png,1,0\n")
    write_csv(tmp_path / "test.csv", "path,red,round\nx/3.png,0,0\n")
    dm = module(AttributeCSVDataModule, tmp_path, num_attributes=2, images="images")
    dm.setup("fit")
    assert dm.test_set[0]["attributes"].tolist() == [0, 0] and dm.train_set[0]["attributes"].tolist() == [1, -1]
    write_csv(tmp_path / "test.csv", "path,red,square\nx/3.png,0,0\n")
    with pytest.raises(ValueError, match=r"test.csv: the test attributes \['red', 'square'\] differ"):
        dm.setup("fit")
    write_csv(tmp_path / "test.csv", "path,red,round\nx/9.png,0,0\n")
    with pytest.raises(FileNotFoundError, match=r"1 of the 1 images listed in .*test.csv are missing .*x/9.png"):
        dm.setup("fit")


def test_unreadable_image_is_a_counted_skip_unless_strict(tmp_path):
    root = write_celeba(tmp_path)
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"not an image")
    dm = module(CelebADataModule, root, num_attributes=3)
    dm.setup("fit")
    assert dm.train_set[1]["skipped"].endswith("000002.jpg")
    strict = module(CelebADataModule, root, num_attributes=3, strict=True)
    strict.setup("fit")
    with pytest.raises(OSError, match="000002.jpg"):
        strict.train_set[1]


def test_spreadsheet_bom_and_quoted_newlines_in_the_csv(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbfpath,red\r\nx/1.png,1\r\n")  # the BOM made the header '\ufeffpath,red'
    assert read_attribute_csv(path).files == ["x/1.png"]
    path.write_bytes(b'path,red\n"x/a\nb.png",1\nx/2.png,2\n')
    with pytest.raises(ValueError, match=r"a\.csv, line 4: attribute 'red' is '2'"):  # the row starts on line 4
        read_attribute_csv(path)


def test_non_utf8_bytes_name_the_line_in_every_attribute_file(tmp_path):
    root = write_celeba(tmp_path / "celeba")
    attributes, partition = root / "list_attr_celeba.txt", root / "list_eval_partition.txt"
    partition.write_bytes(b"\xef\xbb\xbf" + partition.read_bytes())
    assert read_celeba_partition(partition)["000001.jpg"] == 0  # not '\ufeff000001.jpg'
    attributes.write_bytes(b"\xef\xbb\xbf" + attributes.read_bytes())
    assert read_celeba_attributes(attributes).files[0] == "000001.jpg"
    for path in (attributes, partition):
        lines = path.read_bytes().split(b"\n")
        lines[2] = b"\xe9" + lines[2]
        path.write_bytes(b"\n".join(lines))
        with pytest.raises(ValueError, match=rf"{path.name}, line 3, column 1 \(byte offset \d+\): byte b'\\xe9'"):
            (read_celeba_attributes if path == attributes else read_celeba_partition)(path)
    csv_path = tmp_path / "a.csv"
    csv_path.write_bytes("path,red\nna\xefve.png,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"a\.csv, line 2, column 3"):
        read_attribute_csv(csv_path)


FACE_CSV = "path,age,smiling,gender\nx/1.png,31.5,1,female\nx/2.png,,0,\nx/3.png,7,,male\n"
GENDERS = {"gender": ["male", "female"]}


def test_csv_regression_and_categorical_columns_are_targets(tmp_path):
    table = read_attribute_csv(write_csv(tmp_path / "a.csv", FACE_CSV), ["age"], GENDERS)
    assert table.names == ["smiling"] and table.labels.tolist() == [[1], [0], [-1]]
    assert table.targets["gender"].tolist() == [1, -1, 0]
    np.testing.assert_array_equal(table.targets["age"], np.array([31.5, np.nan, 7.0], np.float32))
    assert table.subset([2]).targets["gender"].tolist() == [0]
    # no binary column at all: only the other outputs
    only = read_attribute_csv(write_csv(tmp_path / "b.csv", "path,age\nx/1.png,3\n"), ["age"])
    assert only.names == [] and only.labels.shape == (1, 0)


@pytest.mark.parametrize("text, message", [
    ("path,age,smiling,gender\nx/1.png,old,1,male\n", r"line 2: 'age' is 'old'; expected a finite number"),
    ("path,age,smiling,gender\nx/1.png,inf,1,male\n", r"line 2: 'age' is 'inf'; expected a finite number"),
    ("path,age,smiling,gender\nx/1.png,3,1,male\nx/2.png,3,1,f\n",
     r"line 3: 'gender' is 'f'; expected one of \['male', 'female'\] or empty"),
    ("path,age,smiling\nx/1.png,3,1\n", r"line 1: no column \['gender'\]"),
])
def test_bad_target_columns_name_the_line(tmp_path, text, message):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=message) as err:
        read_attribute_csv(path, ["age"], GENDERS)
    assert str(path) in str(err.value)


def test_csv_data_module_samples_carry_the_targets(tmp_path):
    (tmp_path / "x").mkdir()
    for i in (1, 2, 3):
        Image.fromarray(np.full((20, 20, 3), 50 * i, np.uint8)).save(tmp_path / "x" / f"{i}.png")
    for split in ("train", "val", "test"):
        write_csv(tmp_path / f"{split}.csv", FACE_CSV)
    dm = module(AttributeCSVDataModule, tmp_path, num_attributes=1, regression=["age"], categorical=GENDERS)
    dm.setup("fit")
    batch = dm.collate([dm.train_set[i] for i in range(3)])
    assert batch["targets"]["gender"].tolist() == [1, -1, 0] and batch["targets"]["age"].dtype == torch.float32
    assert batch["attributes"].tolist() == [[1], [0], [-1]]
