"""Small synthetic photo collections for the predict tests: noise photos of a few sizes in a folder
tree, with unreadable files among them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: the unreadable files of :func:`photo_tree`, by name
UNREADABLE = ("broken.jpg", "deep/truncated.png")


def photo_tree(root: Path, count: int = 9, seed: int = 0) -> list[Path]:
    """``count`` readable noise photos (24..48 px) spread over ``root``, ``root/a`` and ``root/deep/b``,
    plus :data:`UNREADABLE` (a text file named .jpg, a PNG cut in half) and a non-image note; returns the
    photo files (the unreadable ones included) in the folder source's order."""
    rng = np.random.default_rng(seed)
    folders = [root, root / "a", root / "deep" / "b"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        h, w = int(rng.integers(24, 49)), int(rng.integers(24, 49))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folders[i % 3] / f"p{i:03d}.png")
    (root / "broken.jpg").write_text("not a photo")
    whole = root / "deep" / "whole.png"
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(whole)
    data = whole.read_bytes()
    whole.unlink()
    (root / "deep" / "truncated.png").write_bytes(data[:len(data) // 2])
    (root / "notes.txt").write_text("not listed: not an image file")
    return sorted((p for p in root.rglob("*") if p.suffix in (".png", ".jpg")),
                  key=lambda p: p.relative_to(root).as_posix())
