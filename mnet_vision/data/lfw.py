"""LFW verification pairs: ``pairs.txt`` and the ``<root>/<name>/<name>_NNNN.jpg`` image layout,
read (:func:`read_lfw_pairs`) and written for a set of identities (:func:`write_lfw_pairs`).

``pairs.txt`` starts with a header ``<sets> <pairs per set>`` (LFW: ``10 300``, i.e. 10 folds of
300 matched + 300 mismatched pairs), then one pair a line: matched ``name n1 n2`` or mismatched
``name1 n1 name2 n2`` (tabs or spaces). Pairs whose image files are missing are skipped, counted
and logged, never silently scored.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnet_vision.textfiles import read_lines

log = logging.getLogger(__name__)

LFW_FOLDS = 10  # LFW View 2: 10 sets of matched + mismatched pairs


@dataclass
class LfwPairs:
    """Pairs in file order (the folds are consecutive blocks of it), with what was left out."""

    first: list[Path]
    second: list[Path]
    issame: list[bool]
    sets: int
    pairs_per_set: int
    missing: list[int] = field(default_factory=list)  # line numbers of pairs left out (an image is missing)

    def __len__(self) -> int:
        return len(self.issame)


def lfw_image(root: Path, name: str, number: str, ext: str) -> Path:
    return root / name / f"{name}_{int(number):04d}.{ext}"


def read_lfw_pairs(pairs_file: str | Path, root: str | Path, ext: str = "jpg") -> LfwPairs:
    """Parse ``pairs_file`` against the images under ``root``.

    Malformed lines (a header that is not two positive integers, a pair line with other than 3 or 4
    fields, image numbers that are not integers) raise ``ValueError`` naming the file and line.
    """
    pairs_file, root = Path(pairs_file), Path(root)
    lines = read_lines(pairs_file, "LFW pairs file")  # UTF-8 with or without a BOM; bad bytes name the line
    if not root.is_dir():
        raise FileNotFoundError(f"LFW image folder {root} does not exist; expected <root>/<name>/<name>_0001.{ext}")
    header = lines[0].split() if lines else []
    if len(header) != 2 or not all(h.isdigit() and int(h) > 0 for h in header):
        raise ValueError(f"{pairs_file}:1: expected a header '<sets> <pairs per set>' (LFW: '10 300'), got {lines[:1]}")
    out = LfwPairs([], [], [], sets=int(header[0]), pairs_per_set=int(header[1]))
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (3, 4) or not all(f.isdigit() for f in (fields[1], fields[-1])):
            raise ValueError(f"{pairs_file}:{number}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {line!r}")
        if len(fields) == 3:
            a, b, same = lfw_image(root, fields[0], fields[1], ext), lfw_image(root, fields[0], fields[2], ext), True
        else:
            a, b, same = lfw_image(root, fields[0], fields[1], ext), lfw_image(root, fields[2], fields[3], ext), False
        if not (a.is_file() and b.is_file()):
            out.missing.append(number)
            continue
        out.first.append(a)
        out.second.append(b)
        out.issame.append(same)
    if out.missing:
        log.warning("%s: %d pair(s) left out, an image is missing (lines %s)", pairs_file, len(out.missing),
                    out.missing[:10])
    return out


def write_lfw_pairs(path: Path, counts: Mapping[str, int], pairs_per_fold: int, rng: np.random.Generator) -> None:
    """Write LFW-format verification pairs over identities with ``counts[name]`` images each.

    ``10 <pairs_per_fold>`` header, then per fold ``pairs_per_fold`` matched lines ``name n1 n2``
    and ``pairs_per_fold`` mismatched lines ``name1 n1 name2 n2`` (tab-separated, 1-based image
    numbers). As in LFW View 2, the identities are dealt into disjoint groups and each fold draws
    from one group, so a fold's people are unseen by the other folds; with fewer than 20
    identities there are ``n // 2`` groups, used cyclically. Matched pairs within a fold are
    distinct while the group has enough of them.
    """
    names = sorted(counts)
    if len(names) < 2 or min(counts.values()) < 2:
        raise ValueError(f"pairs need at least 2 identities with at least 2 images each, got {dict(counts)}")
    order = rng.permutation(len(names))
    groups = [[names[i] for i in g] for g in np.array_split(order, min(LFW_FOLDS, len(names) // 2))]
    lines = [f"{LFW_FOLDS}\t{pairs_per_fold}"]
    for fold in range(LFW_FOLDS):
        group = groups[fold % len(groups)]
        matched = [(name, a, b) for name in group
                   for a in range(1, counts[name] + 1) for b in range(a + 1, counts[name] + 1)]
        picks = rng.choice(len(matched), pairs_per_fold, replace=len(matched) < pairs_per_fold)
        lines += ["\t".join(map(str, matched[i])) for i in picks]
        for _ in range(pairs_per_fold):
            first, second = rng.choice(len(group), 2, replace=False)
            a, b = group[first], group[second]
            lines.append(f"{a}\t{rng.integers(1, counts[a] + 1)}\t{b}\t{rng.integers(1, counts[b] + 1)}")
    path.write_text("\n".join(lines) + "\n")
