import json

import pytest

from mnet_vision.predict.sources import chunked, photo_paths
from tests.predict.photos import photo_tree


def test_a_folder_tree_is_every_image_below_it_sorted_by_relative_path(tmp_path):
    files = photo_tree(tmp_path / "photos", count=6)
    photos = photo_paths(tmp_path / "photos")
    assert photos.paths == files
    relative = [p.relative_to(tmp_path / "photos").as_posix() for p in photos.paths]
    assert relative == sorted(relative) and "deep/b/p002.png" in relative and "notes.txt" not in relative
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no image files"):
        photo_paths(tmp_path / "empty")
    with pytest.raises(ValueError, match="images=.* applies to a list or a COCO json, not to the folder input"):
        photo_paths(tmp_path / "photos", images=tmp_path)


def test_lists_are_read_relative_to_their_folder_or_images(tmp_path):
    (tmp_path / "list.txt").write_text("b.jpg\n\n  a/c.png \n/abs/d.jpg\n")
    assert [str(p) for p in photo_paths(tmp_path / "list.txt").paths] == [
        str(tmp_path / "b.jpg"), str(tmp_path / "a/c.png"), "/abs/d.jpg"]
    (tmp_path / "with_header.csv").write_text("id,path\n1,x.jpg\n2,y/z.jpg\n")
    assert photo_paths(tmp_path / "with_header.csv", images="/root").paths[1].as_posix() == "/root/y/z.jpg"
    (tmp_path / "plain.csv").write_text("x.jpg\r\ny.jpg\r\n")
    assert [p.name for p in photo_paths(tmp_path / "plain.csv").paths] == ["x.jpg", "y.jpg"]


def test_list_errors_name_the_line(tmp_path):
    (tmp_path / "wide.csv").write_text("x.jpg\ny.jpg,3\n")
    with pytest.raises(ValueError, match=r"wide.csv, line 2: 2 columns but no header row naming a 'path' column"):
        photo_paths(tmp_path / "wide.csv")
    (tmp_path / "hole.csv").write_text("path,id\nx.jpg,1\n,2\n")
    with pytest.raises(ValueError, match=r"hole.csv, line 3: no value in the 'path' column"):
        photo_paths(tmp_path / "hole.csv")
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(FileNotFoundError, match="names no photos"):
        photo_paths(tmp_path / "blank.txt")
    (tmp_path / "photos.tar").write_text("")
    with pytest.raises(ValueError, match="expected a folder, a photo list"):
        photo_paths(tmp_path / "photos.tar")


def test_a_path_listed_twice_is_predicted_once_and_counted(tmp_path):
    (tmp_path / "list.txt").write_text("a.jpg\nb.jpg\na.jpg\n")
    photos = photo_paths(tmp_path / "list.txt")
    assert [p.name for p in photos.paths] == ["a.jpg", "b.jpg"] and photos.duplicates == 1


def test_a_coco_json_gives_its_images_in_file_order(tmp_path):
    coco = {"images": [{"id": 7, "file_name": "z.jpg"}, {"id": 3, "file_name": "sub/a.jpg"}], "annotations": []}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    photos = photo_paths(tmp_path / "instances.json", images=tmp_path / "val2017")
    assert photos.paths == [tmp_path / "val2017" / "z.jpg", tmp_path / "val2017" / "sub" / "a.jpg"]
    (tmp_path / "bad.json").write_text(json.dumps({"images": [{"id": 1}]}))
    with pytest.raises(ValueError, match=r"images\[0\] has no file_name"):
        photo_paths(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="expected a COCO json with an 'images' list"):
        photo_paths(tmp_path / "list.json")


def test_chunks_are_numbered_by_position():
    assert chunked(list("abcdefg"), 3) == [list("abc"), list("def"), ["g"]]
    with pytest.raises(ValueError, match="chunk_size=0"):
        chunked(list("ab"), 0)
