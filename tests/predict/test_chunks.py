import numpy as np
from PIL import Image

from mnet_vision.predict.chunks import ChunkDataset, shares


def test_each_pending_chunk_goes_to_exactly_one_process_and_shares_are_padded_empty():
    pending = [0, 2, 3, 5, 8]
    parts = shares(pending, 2)
    assert parts == [[0, 3, 8], [2, 5, None]]
    assert sorted(c for p in parts for c in p if c is not None) == pending
    assert shares([], 3) == [[None], [None], [None]]  # every process runs one empty step and meets the others
    assert shares([4], 1) == [[4]]


def test_a_chunk_item_decodes_its_photos_and_lists_the_unreadable_with_reasons(tmp_path):
    Image.fromarray(np.full((5, 7, 3), 9, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_text("no")
    items = ChunkDataset([(4, [str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), str(tmp_path / "gone.png")]), None],
                         max_pixels=1000)
    batch = items[0]
    assert batch["chunk"] == 4 and batch["paths"] == [str(tmp_path / "a.png")] and batch["arrays"][0].shape == (5, 7, 3)
    reasons = {u["path"]: u["reason"] for u in batch["unreadable"]}
    assert list(reasons) == [str(tmp_path / "b.jpg"), str(tmp_path / "gone.png")]
    assert "UnidentifiedImageError" in reasons[str(tmp_path / "b.jpg")] and reasons[str(tmp_path / "gone.png")] == \
        "file not found"
    assert items[1] == {"chunk": None, "paths": [], "arrays": [], "unreadable": []}
    assert ChunkDataset([(0, [str(tmp_path / "a.png")])], max_pixels=20)[0]["unreadable"][0]["reason"].startswith(
        "7x5 pixels")
