"""Where tools write: never over an input, never two inputs into one drawing, unwritable found first."""
import os

import pytest

from mnet_vision.outputs import check_writable, drawing_paths, prepare_output_dir, refuse_overwrite


def test_drawings_are_one_per_input_mirroring_the_common_folder(tmp_path):
    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "a" / "x.png", tmp_path / "a" / "x_jpg"]
    paths = drawing_paths(inputs, tmp_path / "out")
    assert paths == [tmp_path / "out" / "a" / "x.jpg.png", tmp_path / "out" / "b" / "x.jpg.png",
                     tmp_path / "out" / "a" / "x.png.png", tmp_path / "out" / "a" / "x_jpg.png"]
    assert len(set(paths)) == len(paths)
    assert drawing_paths([], tmp_path) == []


def test_output_folders_among_the_inputs_are_refused(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    inputs = [photos / "a.png"]
    for out in (photos, photos / "drawn", photos / "." / "deeper" / ".."):
        with pytest.raises(ValueError, match="could overwrite them"):
            prepare_output_dir(out, inputs)
    assert prepare_output_dir(tmp_path / "drawn", inputs).is_dir()
    assert prepare_output_dir(tmp_path / "photos-drawn", inputs).is_dir()  # a sibling with a common prefix is fine


def test_unwritable_folders_are_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match=r"checkpoints .*file/sub is not writable"):
        check_writable(tmp_path / "file" / "sub", "checkpoints")
    assert check_writable(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert not list((tmp_path / "new" / "deep").iterdir())  # the probe leaves nothing behind


def test_an_output_that_is_an_input_is_refused_by_any_path(tmp_path):
    model = tmp_path / "last.ckpt"
    model.write_bytes(b"weights")
    os.link(model, tmp_path / "linked.ckpt")
    for output in (model, tmp_path / "sub" / ".." / "last.ckpt", tmp_path / "linked.ckpt"):
        with pytest.raises(ValueError, match=r"out=.* is an input of this run .*choose another out"):
            refuse_overwrite(output, [model], "out")
    assert refuse_overwrite(tmp_path / "other.pt", [model, tmp_path / "missing"], "out") == tmp_path / "other.pt"
    assert model.read_bytes() == b"weights"
