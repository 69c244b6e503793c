import numpy as np
import pytest
from PIL import Image

from mnet_vision.data.lfw import read_lfw_pairs, write_lfw_pairs


def _lfw(tmp_path, names=(("Ann_Lee", 3), ("Bo_Park", 1))):
    root = tmp_path / "lfw"
    for name, count in names:
        (root / name).mkdir(parents=True)
        for i in range(1, count + 1):
            Image.new("RGB", (4, 4)).save(root / name / f"{name}_{i:04d}.jpg")
    return root


def test_pairs_in_file_order_with_missing_files_counted(tmp_path):
    root = _lfw(tmp_path)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t1\nAnn_Lee\t1\t3\nAnn_Lee\t2\tBo_Park\t1\nAnn_Lee\t1\t9\n\nBo_Park 1 Cy_Ng 1\n")
    out = read_lfw_pairs(pairs, root)
    assert (out.sets, out.pairs_per_set) == (2, 1)
    assert out.issame == [True, False]
    assert out.first[0] == root / "Ann_Lee" / "Ann_Lee_0001.jpg" and out.second[1] == root / "Bo_Park" / "Bo_Park_0001.jpg"
    assert out.missing == [4, 6]  # Ann_Lee_0009 and the Cy_Ng folder do not exist


@pytest.mark.parametrize("text, match", [
    ("Ann_Lee 1 2\n", "pairs.txt:1: expected a header"),
    ("10 300\nAnn_Lee 1\n", "pairs.txt:2: expected 'name n1 n2'"),
    ("10 300\nAnn_Lee one 2\n", "pairs.txt:2:"),
])
def test_malformed_pairs_file_names_the_line(tmp_path, text, match):
    root = _lfw(tmp_path)
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_lfw_pairs(tmp_path / "pairs.txt", root)


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="pairs file"):
        read_lfw_pairs(tmp_path / "pairs.txt", tmp_path)
    (tmp_path / "pairs.txt").write_text("10 300\n")
    with pytest.raises(FileNotFoundError, match="image folder"):
        read_lfw_pairs(tmp_path / "pairs.txt", tmp_path / "nope")


def test_bom_and_non_utf8_bytes(tmp_path):
    root = _lfw(tmp_path)
    pairs = tmp_path / "pairs.txt"
    pairs.write_bytes(b"\xef\xbb\xbf1\t1\r\nAnn_Lee\t1\t3\r\n")  # the BOM made the header '\ufeff1 1'
    assert read_lfw_pairs(pairs, root).issame == [True]
    pairs.write_bytes(b"1\t1\nAnn_Le\xe9\t1\t3\n")
    with pytest.raises(ValueError, match=r"pairs\.txt, line 2, column 7 \(byte offset 10\)"):
        read_lfw_pairs(pairs, root)


def test_pair_folds_hold_disjoint_people_like_lfw(tmp_path):
    counts = {f"p{i:02d}": 3 for i in range(25)}
    write_lfw_pairs(tmp_path / "pairs.txt", counts, 4, np.random.default_rng(0))
    lines = (tmp_path / "pairs.txt").read_text().splitlines()[1:]
    folds = [{f for line in lines[k * 8:(k + 1) * 8] for f in line.split("\t") if f.startswith("p")} for k in range(10)]
    assert all(not (folds[i] & folds[j]) for i in range(10) for j in range(i))
    matched = [line for k in range(10) for line in lines[k * 8:k * 8 + 4]]
    assert len(set(matched)) == len(matched)  # enough candidates: no repeated matched pair
