"""The synthetic face-identity set on disk, in the LFW / VGGFace2 layout, so the face-embedding
pipeline (identity folders for training, LFW ``pairs.txt`` for verification) runs with no
downloads. The people are drawn by :mod:`mnet_vision.data.synthetic.faces`: identities come from
``rng([seed, split, identity])``, images from ``rng([seed, split, identity, image])``; every pixel
is a pure function of them.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mnet_vision.data.lfw import write_lfw_pairs
from mnet_vision.data.synthetic.faces import draw_face_image, draw_identity
from mnet_vision.data.synthetic.generate import generate_once

DEFAULT_IDENTITIES = {"train": 300, "val": 60, "test": 100}
DEFAULT_PER_IDENTITY = {"train": 10, "val": 6, "test": 6}
# Bump when drawing (faces.py) or the layout changes, so a set made by an older generator is
# reported, never silently mixed.
GENERATOR_VERSION = 1


def identity_photo(seed: int, split_index: int, identity_index: int, image_index: int, size: int = 64) -> np.ndarray:
    """Photo ``image_index`` of identity ``identity_index`` of split number ``split_index`` in the set
    made with ``seed``: a ``(size, size, 3)`` uint8 array, the same on every call."""
    person = draw_identity(np.random.default_rng([seed, split_index, identity_index]))
    return draw_face_image(person, np.random.default_rng([seed, split_index, identity_index, image_index]), size)


def identity_name(number: int) -> str:
    """Folder/file stem of the ``number``-th identity of the set (over all splits): ``id00042``."""
    return f"id{number:05d}"


def make_identity_dataset(root: str | Path, identities: Mapping[str, int] = DEFAULT_IDENTITIES,
                          per_identity: Mapping[str, int] = DEFAULT_PER_IDENTITY, image_size: int = 64,
                          pairs_per_fold: int = 30, seed: int = 0) -> Path:
    """Write the synthetic face-identity set unless it is there, and return ``root``.

    Layout (LFW naming, readable as identity folders and as LFW):
    ``root/<split>/<identity>/<identity>_0001.png`` (1-based image numbers) with identity names
    ``id00000``, ``id00001``, ... numbered across splits, so splits hold disjoint people; and
    ``root/pairs_<split>.txt`` (LFW ``pairs.txt`` format, see :func:`mnet_vision.data.lfw.write_lfw_pairs`) for every
    split except ``train``. ``identities`` and ``per_identity`` map split name to the number of
    identities and of images per identity.
    """
    if set(identities) != set(per_identity):
        raise ValueError(f"identities and per_identity must name the same splits, got {sorted(identities)} "
                         f"and {sorted(per_identity)}")
    params = {"kind": "identities", "version": GENERATOR_VERSION, "identities": dict(identities),
              "per_identity": {s: per_identity[s] for s in identities}, "image_size": image_size,
              "pairs_per_fold": pairs_per_fold, "seed": seed}
    first = np.cumsum([0, *identities.values()])  # number of the first identity of each split

    def write(tmp: Path) -> int:
        # pairs first: they need only the counts, and a split too small for them fails before any drawing
        for s, split in enumerate(identities):
            if split != "train":
                counts = {identity_name(int(first[s]) + i): per_identity[split] for i in range(identities[split])}
                # 1000 + s: a stream apart from every identity's rng([seed, s, i])
                write_lfw_pairs(tmp / f"pairs_{split}.txt", counts, pairs_per_fold,
                                np.random.default_rng([seed, 1000 + s]))
        jobs = [(s, split, i, j) for s, split in enumerate(identities)
                for i in range(identities[split]) for j in range(per_identity[split])]
        for s, split, i, j in tqdm(jobs, desc=f"generating {Path(root).name}", unit="img", leave=False):
            name = identity_name(int(first[s]) + i)
            out = tmp / split / name / f"{name}_{j + 1:04d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(identity_photo(seed, s, i, j, image_size)).save(out)
        return len(jobs)

    return generate_once(root, params, write)


def identity_sample_grid(rows: int = 6, cols: int = 8, image_size: int = 64, seed: int = 0) -> np.ndarray:
    """``rows`` training identities of the set made with ``seed``, ``cols`` photos each, as one
    ``(rows * image_size, cols * image_size, 3)`` uint8 image (for the docs)."""
    grid = np.zeros((rows * image_size, cols * image_size, 3), np.uint8)
    for i in range(rows):
        for j in range(cols):
            grid[i * image_size:(i + 1) * image_size, j * image_size:(j + 1) * image_size] = \
                identity_photo(seed, 0, i, j, image_size)
    return grid
