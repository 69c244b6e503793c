import numpy as np
from PIL import Image

from mnet_vision.predict.chunks import PartDataset, part_items, shares


def test_each_pending_chunk_goes_to_exactly_one_process_in_parts_of_batch_photos():
    pending = [0, 2, 3, 5, 8]
    parts = shares(pending, 2)
    assert parts == [[0, 3, 8], [2, 5]]
    assert sorted(c for p in parts for c in p) == pending
    chunks = [[f"c{c}-{i}" for i in range(5 if c == 3 else 2)] for c in range(9)]
    items = part_items(chunks, parts[0], batch=2)
    assert items == [(0, 0, 1, ["c0-0", "c0-1"]), (3, 0, 3, ["c3-0", "c3-1"]), (3, 1, 3, ["c3-2", "c3-3"]),
                     (3, 2, 3, ["c3-4"]), (8, 0, 1, ["c8-0", "c8-1"])]
    assert shares([], 3) == [[], [], []]
    assert part_items(chunks, [], 2) == [None]  # one empty step: the process still meets the others at the end


def test_a_part_decodes_its_photos_and_lists_the_unreadable_with_reasons(tmp_path):
    Image.fromarray(np.full((5, 7, 3), 9, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_text("no")
    paths = [str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), str(tmp_path / "gone.png")]
    items = PartDataset([(4, 1, 2, paths), None], max_pixels=1000)
    batch = items[0]
    assert (batch["chunk"], batch["part"], batch["parts"]) == (4, 1, 2)
    assert batch["paths"] == [str(tmp_path / "a.png")] and batch["arrays"][0].shape == (5, 7, 3)
    reasons = {u["path"]: u["reason"] for u in batch["unreadable"]}
    assert list(reasons) == paths[1:]
    assert "UnidentifiedImageError" in reasons[paths[1]] and reasons[paths[2]] == "file not found"
    assert items[1]["chunk"] is None and items[1]["paths"] == [] and items[1]["unreadable"] == []
    assert PartDataset([(0, 0, 1, paths[:1])], max_pixels=20)[0]["unreadable"][0]["reason"].startswith("7x5 pixels")
