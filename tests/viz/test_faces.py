"""Face pictures: thumbnails cut where the box is (padded at the border), photos boxed in each person's colour,
contact sheets."""
import numpy as np
import pytest
from PIL import Image, ImageColor

from mnet_vision.viz.faces import (
    UNKNOWN_COLOUR,
    FaceCell,
    face_thumbnail,
    person_colour,
    save_face_sheet,
    save_labelled_photo,
)


def test_thumbnail_is_the_box_centred_and_padded_black_beyond_the_photo():
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[40:60, 90:110] = 255  # a white 20x20 "face"
    thumb = face_thumbnail(rgb, (90, 40, 110, 60), size=24, margin=0.1)  # 24 px square around it, 2 px each side
    assert thumb.shape == (24, 24, 3) and thumb.dtype == np.uint8
    assert (thumb[3:21, 3:21] == 255).all() and (thumb[0] == 0).all() and (thumb[:, 0] == 0).all()
    corner = face_thumbnail(rgb, (-30, -30, 10, 10), size=16)  # mostly outside: black, no error
    assert corner.shape == (16, 16, 3) and not corner.any()
    assert not face_thumbnail(rgb, (500, 500, 520, 520), size=8).any()  # wholly outside
    with pytest.raises(ValueError, match=r"expects an \(H, W, 3\) photo"):
        face_thumbnail(np.zeros((4, 4)), (0, 0, 2, 2))


def test_person_colours_are_stable_and_unknown_is_grey():
    assert person_colour("alice") == person_colour("alice") != UNKNOWN_COLOUR
    assert person_colour(None) == person_colour("unknown") == UNKNOWN_COLOUR
    assert len({person_colour(f"c{i}") for i in range(40)}) > 5  # spread over the palette


def test_labelled_photo_boxes_each_face_in_its_colour(tmp_path):
    rgb = np.zeros((400, 400, 3), np.uint8)
    path = save_labelled_photo(rgb, [(50, 50, 150, 150), (200, 200, 350, 350)], ["0: alice 0.41", "1: unknown 0.73"],
                               ["#e15759", UNKNOWN_COLOUR], tmp_path / "p.png")
    drawn = np.asarray(Image.open(path))
    assert drawn.shape == (400, 400, 3)
    assert tuple(drawn[100, 50]) == ImageColor.getrgb("#e15759")  # left edge of face 0
    assert tuple(drawn[300, 350]) == ImageColor.getrgb(UNKNOWN_COLOUR)  # right edge of face 1
    assert not drawn[100, 100].any() and not drawn[390, 10].any()  # inside a box, outside both: untouched
    with pytest.raises(ValueError, match="2 boxes but 1 captions and 2 colours"):
        save_labelled_photo(rgb, [(0, 0, 1, 1)] * 2, ["a"], ["red"] * 2, tmp_path / "q.png")


def test_face_sheet_wraps_long_rows_and_draws_empty_cells(tmp_path):
    face = np.full((32, 32, 3), 200, np.uint8)
    short = save_face_sheet([[FaceCell(face, "query"), FaceCell(None, "moved.jpg#0", UNKNOWN_COLOUR)]],
                            tmp_path / "short.png", title="two cells")
    wrapped = save_face_sheet([[FaceCell(face, f"m{i}") for i in range(10)]], tmp_path / "long.png", max_columns=4)
    with Image.open(short) as a, Image.open(wrapped) as b:
        assert a.format == b.format == "PNG"
        assert b.height > 2 * a.height  # 10 cells in rows of 4: three lines against one (and a title)
    with pytest.raises(ValueError, match="no faces to draw"):
        save_face_sheet([], tmp_path / "none.png")
