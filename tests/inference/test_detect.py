"""Detecting on image files with a trained checkpoint: JSON, pictures, bad input."""
import json
from pathlib import Path

import pytest
from PIL import Image

from mnet_vision.images import image_files
from mnet_vision.inference.detect import detect_files, load_detector


def test_detect_a_folder_writes_json_and_pictures_and_skips_bad_files(detection_run, tmp_path):
    images = Path(detection_run["run_dir"]).parent / "data" / "val2017"
    folder = tmp_path / "in"
    folder.mkdir()
    for src in sorted(images.glob("*.png"))[:2]:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")  # not an image extension: not read
    summary = detect_files(detection_run["best_checkpoint"], folder, tmp_path / "out", score_thresh=0.0)
    assert summary["images"] == 2 and summary["skipped"] == [str(folder / "broken.png")]
    entries = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [Path(e["file"]).name for e in entries] == ["000001.png", "000002.png"]
    for entry in entries:
        assert entry["width"] == entry["height"] == 64
        for det in entry["detections"]:
            x1, y1, x2, y2 = det["box_xyxy"]
            assert det["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.02)
            assert det["label"] in {"circle", "square", "triangle", "pentagon", "hexagon", "star", "cross",
                                    "ring", "diamond", "crescent"}
            assert 1 <= det["category_id"] <= 10
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["000001.png.png", "000002.png.png"]
    with Image.open(tmp_path / "out" / "000001.png.png") as picture:
        assert picture.size == (320, 320)  # enlarged 5x so the captions read


def test_threshold_filters_detections(detection_run, tmp_path):
    image = sorted((Path(detection_run["run_dir"]).parent / "data" / "val2017").glob("*.png"))[0]
    low = detect_files(detection_run["best_checkpoint"], image, tmp_path / "low", score_thresh=0.0, draw=False)
    high = detect_files(detection_run["best_checkpoint"], image, tmp_path / "high", score_thresh=1.0, draw=False)
    assert low["detections"] > high["detections"] == 0
    assert not list((tmp_path / "low").glob("*.png"))


def test_class_names_come_from_the_checkpoint(detection_run):
    loaded = load_detector(detection_run["best_checkpoint"])
    model, names, category_ids = loaded.model, loaded.meta.class_names, loaded.meta.category_ids
    assert not model.training
    assert names[:3] == ["__background__", "circle", "square"] and category_ids[:3] == [0, 1, 2]


def test_bad_inputs_are_named(detection_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an image file nor a folder"):
        image_files(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="holds no image files"):
        image_files(tmp_path)
    with pytest.raises(ValueError, match="score threshold"):
        detect_files(detection_run["best_checkpoint"], tmp_path, tmp_path / "o", score_thresh=2)


def _photos(detection_run, folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    source = sorted((Path(detection_run["run_dir"]).parent / "data" / "val2017").glob("*.png"))
    for src, name in zip(source, names):
        Image.open(src).save(folder / name)
    return folder


@pytest.mark.parametrize("out", [".", "sub"])
def test_an_output_folder_among_the_inputs_is_refused_and_the_photos_survive(detection_run, tmp_path, out):
    folder = _photos(detection_run, tmp_path / "in", ["a.png", "b.png"])
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError, match="could overwrite them"):
        detect_files(detection_run["best_checkpoint"], folder, folder / out, score_thresh=0.0)
    with pytest.raises(ValueError, match="could overwrite them"):  # one file: its folder is the input folder
        detect_files(detection_run["best_checkpoint"], folder / "a.png", folder, score_thresh=0.0)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_photos_of_one_stem_get_one_drawing_each(detection_run, tmp_path):
    folder = _photos(detection_run, tmp_path / "in", ["photo.jpg", "photo.png"])
    summary = detect_files(detection_run["best_checkpoint"], folder, tmp_path / "out", score_thresh=0.0)
    assert summary["images"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["detections.json", "photo.jpg.png",
                                                                    "photo.png.png"]


def test_an_unwritable_output_folder_is_refused_before_any_work(detection_run, tmp_path):
    folder = _photos(detection_run, tmp_path / "in", ["a.png"])
    (tmp_path / "file").write_text("a file, not a folder")
    # the checkpoint does not even exist: the output folder is checked first
    with pytest.raises(PermissionError, match=r"output folder .*file/out is not writable"):
        detect_files(tmp_path / "missing.ckpt", folder, tmp_path / "file" / "out")


def test_an_image_over_max_pixels_is_a_counted_skip(detection_run, tmp_path):
    folder = _photos(detection_run, tmp_path / "in", ["a.png", "b.png"])
    Image.new("1", (3000, 3000)).save(folder / "huge.png")  # 9 MP, a few KB on disk
    summary = detect_files(detection_run["best_checkpoint"], folder, tmp_path / "out", draw=False,
                           max_pixels=4_000_000)
    assert summary["images"] == 2 and summary["skipped"] == [str(folder / "huge.png")]
