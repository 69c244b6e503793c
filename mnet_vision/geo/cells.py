"""PlaNet's adaptive S2 partition of the Earth into classification cells, built from photo locations.

PlaNet (Weyand et al. 2016) starts from coarse S2 cells, splits every cell holding more than
``t_max`` photos into its 4 children, and finally drops cells holding fewer than ``t_min`` photos
(oceans, poles) together with their photos. TIB GeoEstimation (Müller-Budack et al. 2018) builds
several such partitions from the same photos (t_max 5000 / 2000 / 1000, t_min 50) for its
hierarchical classifier. No library implements this, so it is written here by hand (docs/design.md, Conventions).

Each cell's *class* is its row: cells are in cell-id (Hilbert-curve) order. Besides the cell, a
class carries its photo count, the mean photo location (the point to predict for the class, as
TIB does; averaged as unit vectors, so right across the antimeridian) and the S2 cell centre.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnet_vision.atomic import atomic_write
from mnet_vision.geo.distances import check_coordinates, invalid_coordinates, to_degrees, to_unit_vectors
from mnet_vision.geo.s2 import (
    MAX_LEVEL,
    cell_centers,
    cell_levels,
    ids_to_tokens,
    is_valid,
    leaf_cell_ids,
    map_chunks,
    parent_ids,
    range_max,
    range_min,
    tokens_to_ids,
)
from mnet_vision.textfiles import read_csv_rows

CSV_COLUMNS = ("class", "token", "level", "count", "lat_mean", "lon_mean", "lat_center", "lon_center")


def _overlap(ids: np.ndarray) -> tuple[int, int] | None:
    """``(outer, inner)`` indices of a pair of cells of which one contains the other (equal ids
    included), or None when the cells are disjoint."""
    if len(ids) < 2:
        return None
    lo, hi, levels = range_min(ids), range_max(ids), cell_levels(ids)
    order = np.lexsort((levels, lo))  # by range start, the larger (coarser) cell first on ties
    clash = np.flatnonzero(lo[order][1:] <= np.maximum.accumulate(hi[order])[:-1])
    if not len(clash):
        return None
    inner = int(order[clash[0] + 1])
    # the containing cell: the coarsest earlier cell whose range reaches the inner one
    earlier = order[:clash[0] + 1]
    outer = int(earlier[np.flatnonzero(hi[earlier] >= lo[inner])[0]])
    return outer, inner


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare
class GeoCellPartition:
    """Disjoint S2 cells, one per class.

    Attributes:
        cell_ids: ``(C,)`` uint64 S2 cell ids in class order (:func:`build_partition` gives
            cell-id order, which is the Hilbert-curve order).
        counts: ``(C,)`` int64 training photos per cell.
        lat_mean, lon_mean: ``(C,)`` float64 degrees, mean photo location of each cell (the mean of
            unit vectors, back to degrees).
        lat_center, lon_center: ``(C,)`` float64 degrees, S2 cell centre.
        source: the CSV file it was read from, or ``"built"``.
    """

    cell_ids: np.ndarray
    counts: np.ndarray
    lat_mean: np.ndarray
    lon_mean: np.ndarray
    lat_center: np.ndarray
    lon_center: np.ndarray
    source: str = "built"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.cell_ids)
        if ids.size and (ids.dtype.kind not in "iu" or (ids.dtype.kind == "i" and (ids < 0).any())):
            raise ValueError(f"{self.source}: cell ids must be non-negative integers (uint64), got dtype {ids.dtype}")
        arrays = {"cell_ids": ids.astype(np.uint64), "counts": np.array(self.counts, np.int64)}
        for name in ("lat_mean", "lon_mean", "lat_center", "lon_center"):
            arrays[name] = np.array(getattr(self, name), np.float64)
        for name, values in arrays.items():
            if values.shape != (len(ids),):
                raise ValueError(f"{self.source}: {name} has shape {values.shape}, "
                                 f"expected ({len(ids)},) like cell_ids")
            values.setflags(write=False)  # own read-only copies: the cached tokens and ranges stay true
            object.__setattr__(self, name, values)
        ids = self.cell_ids
        bad = np.flatnonzero(~is_valid(ids))
        if len(bad):
            raise ValueError(f"{self.source}: class {bad[0]} is not a valid S2 cell (id {int(ids[bad[0]])}, "
                             f"token {ids_to_tokens(ids[bad[:1]])[0]!r})")
        clash = _overlap(ids)
        if clash:
            outer, inner = clash
            raise ValueError(f"{self.source}: cells must be disjoint, but class {outer} ({self.tokens[outer]}) "
                             f"contains class {inner} ({self.tokens[inner]})")

    def __len__(self) -> int:
        return len(self.cell_ids)

    @property
    def tokens(self) -> list[str]:
        """S2 tokens in class order."""
        if "tokens" not in self._cache:
            self._cache["tokens"] = ids_to_tokens(self.cell_ids)
        return self._cache["tokens"]

    @property
    def levels(self) -> np.ndarray:
        """``(C,)`` int64 S2 levels."""
        return cell_levels(self.cell_ids)

    def _sorted_ranges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class indices in cell-id order and their cells' leaf-id ranges in that order."""
        if "ranges" not in self._cache:
            order = np.argsort(self.cell_ids, kind="stable")
            self._cache["ranges"] = order, range_min(self.cell_ids[order]), range_max(self.cell_ids[order])
        return self._cache["ranges"]

    def classes_of_leaves(self, leaves: np.ndarray) -> np.ndarray:
        """Class of the cell containing each level-30 cell id, -1 where no cell does (int64, same shape)."""
        order, lo, hi = self._sorted_ranges()
        leaves = np.asarray(leaves, np.uint64)
        at = np.searchsorted(lo, leaves, side="right") - 1
        inside = at >= 0
        inside[inside] = leaves[inside] <= hi[at[inside]]
        return np.where(inside, order[np.maximum(at, 0)] if len(order) else -1, -1).astype(np.int64)

    def assign(self, lat, lon) -> np.ndarray:
        """Class index (int64, shape of ``lat``) of the cell containing each point in degrees, -1 where
        no cell does (a dropped region). ``ValueError`` for invalid coordinates."""
        lat, lon = check_coordinates(lat, lon, "points to assign")
        flat_lat, flat_lon, out = lat.ravel(), lon.ravel(), np.empty(lat.size, np.int64)
        self._sorted_ranges()  # once, before the threads

        def work(part: slice) -> None:
            out[part] = self.classes_of_leaves(leaf_cell_ids(flat_lat[part], flat_lon[part], threads=1))

        map_chunks(work, lat.size, 1 << 16)
        return out.reshape(lat.shape)

    def to_csv(self, path: str | Path) -> Path:
        """Write the partition (atomically) as ``class,token,level,count,lat_mean,lon_mean,lat_center,
        lon_center``, one header line, degrees to 6 decimals."""
        levels = self.levels

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                f.write(",".join(CSV_COLUMNS) + "\n")
                for k, token in enumerate(self.tokens):
                    f.write(f"{k},{token},{levels[k]},{self.counts[k]},{self.lat_mean[k]:.6f},{self.lon_mean[k]:.6f},"
                            f"{self.lat_center[k]:.6f},{self.lon_center[k]:.6f}\n")

        return atomic_write(path, write)

    @classmethod
    def read_csv(cls, path: str | Path) -> GeoCellPartition:
        """Read a partition written by :meth:`to_csv`. Every error names the file and line: an empty
        file, missing columns, a wrong field count, classes not numbered 0..C-1 in row order, a token
        that is not a valid S2 cell, a level that is not the token's, a count that is not a
        non-negative integer, coordinates out of range, duplicate tokens, and cells inside other
        cells (a partition's cells are disjoint)."""
        path = Path(path)
        numbered = [(n, row) for n, row in read_csv_rows(path, "cell partition")
                    if any(field.strip() for field in row)]
        if not numbered:
            raise ValueError(f"{path} is empty; expected the header {','.join(CSV_COLUMNS)} and one row per cell")
        header = [h.strip().lower() for h in numbered[0][1]]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}, line {numbered[0][0]}: missing column(s) {missing}; expected the header "
                             f"{','.join(CSV_COLUMNS)}")
        line = [n for n, _ in numbered[1:]]  # the file's line of each cell: blank lines are skipped
        body = [row for _, row in numbered[1:]]
        if not body:
            raise ValueError(f"{path} has a header but no cells")
        at = {c: header.index(c) for c in CSV_COLUMNS}
        columns: dict[str, list[str]] = {c: [] for c in CSV_COLUMNS}
        for k, row in enumerate(body):
            if len(row) != len(header):
                raise ValueError(f"{path}, line {line[k]}: expected {len(header)} fields as the header, "
                                 f"found {len(row)}")
            for c in CSV_COLUMNS:
                columns[c].append(row[at[c]].strip())

        def integers(name: str) -> np.ndarray:
            try:
                return np.array([int(v) for v in columns[name]], np.int64)
            except ValueError:
                k = next(k for k, v in enumerate(columns[name]) if not _parses(int, v))
                raise ValueError(f"{path}, line {line[k]}: {name} {columns[name][k]!r} is not an integer") from None

        classes = integers("class")
        wrong = np.flatnonzero(classes != np.arange(len(classes)))
        if len(wrong):
            k = int(wrong[0])
            raise ValueError(f"{path}, line {line[k]}: class {classes[k]}, expected {k}: classes must be numbered "
                             f"0..{len(classes) - 1} in row order")
        tokens = columns["token"]
        ids = np.empty(len(tokens), np.uint64)
        for k, token in enumerate(tokens):
            try:
                ids[k] = tokens_to_ids([token])[0]
            except ValueError:
                raise ValueError(f"{path}, line {line[k]}: token {token!r} is not an S2 token "
                                 "(1 to 16 hex digits)") from None
        bad = np.flatnonzero(~is_valid(ids))
        if len(bad):
            k = int(bad[0])
            raise ValueError(f"{path}, line {line[k]}: token {tokens[k]!r} is not a valid S2 cell id")
        levels, true_levels = integers("level"), cell_levels(ids)
        wrong = np.flatnonzero(levels != true_levels)
        if len(wrong):
            k = int(wrong[0])
            raise ValueError(f"{path}, line {line[k]}: level {levels[k]} but token {tokens[k]} is a level-"
                             f"{true_levels[k]} cell")
        counts = integers("count")
        if (counts < 0).any():
            k = int(np.flatnonzero(counts < 0)[0])
            raise ValueError(f"{path}, line {line[k]}: count {counts[k]} is negative")
        coords = {}
        for name in ("lat_mean", "lon_mean", "lat_center", "lon_center"):
            try:
                coords[name] = np.array([float(v) for v in columns[name]])
            except ValueError:
                k = next(k for k, v in enumerate(columns[name]) if not _parses(float, v))
                raise ValueError(f"{path}, line {line[k]}: {name} {columns[name][k]!r} is not a number") from None
        for kind in ("mean", "center"):
            for name, bad in zip((f"lat_{kind}", f"lon_{kind}"), invalid_coordinates(coords[f"lat_{kind}"],
                                                                                     coords[f"lon_{kind}"])):
                if bad.any():
                    k = int(np.flatnonzero(bad)[0])
                    bound = 90 if name.startswith("lat") else 180
                    raise ValueError(f"{path}, line {line[k]}: {name} {coords[name][k]} is not a number in "
                                     f"[-{bound}, {bound}]")
        first_row: dict[int, int] = {}
        for k, i in enumerate(ids.tolist()):
            if i in first_row:
                raise ValueError(f"{path}, line {line[k]}: token {tokens[k]} repeats line {line[first_row[i]]}")
            first_row[i] = k
        clash = _overlap(ids)
        if clash:
            outer, inner = clash
            raise ValueError(f"{path}: cells overlap: {tokens[outer]} (line {line[outer]}, class {outer}) contains "
                             f"{tokens[inner]} (line {line[inner]}, class {inner}); a partition's cells are disjoint")
        return cls(ids, counts, coords["lat_mean"], coords["lon_mean"], coords["lat_center"], coords["lon_center"],
                   str(path))


def _parses(convert, text: str) -> bool:
    """Whether ``convert(text)`` (``int``, ``float``) reads ``text``."""
    try:
        convert(text)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class PartitionStats:
    """What :func:`build_partition` did: photos in, kept (in kept cells) and dropped; cells kept and
    dropped (under ``t_min``); the S2 levels of the kept cells; seconds for this partition's split,
    means and centres, and seconds for the leaf ids and sort (shared by all partitions built in one
    :func:`build_partitions` call)."""

    t_max: int
    t_min: int
    photos_in: int
    photos_kept: int
    photos_dropped: int
    cells_kept: int
    cells_dropped: int
    min_level_used: int
    max_level_used: int
    seconds: float
    shared_seconds: float


@dataclass
class _SortedPhotos:
    """Photos as level-30 cell ids (``leaves``, input order) and sorted (``sorted``), with, for
    each S2 level ``L`` in [min_level - 1, max_level], the ascending positions ``i`` at which
    ``sorted[i]`` and ``sorted[i + 1]`` lie in one level-``L`` cell but not in one level-``L + 1``
    cell (``L = min_level - 1`` collects every pair apart at min_level, ``max_level`` every pair
    together at max_level)."""

    lat: np.ndarray
    lon: np.ndarray
    leaves: np.ndarray
    sorted: np.ndarray
    min_level: int
    max_level: int
    by_level: list[np.ndarray]
    seconds: float

    @classmethod
    def of(cls, lat: np.ndarray, lon: np.ndarray, min_level: int, max_level: int) -> _SortedPhotos:
        start = time.perf_counter()
        leaves = leaf_cell_ids(lat, lon)
        ordered = np.sort(leaves)
        # Two leaves share their level-L cell iff they agree on every bit above the level-L
        # sentinel (bit 2 (30 - L)), i.e. iff their XOR is below 2^(61 - 2L): count the levels passed.
        shared = np.empty(max(len(ordered) - 1, 0), np.int8)

        def work(part: slice) -> None:
            x = ordered[part.start + 1:part.stop + 1] ^ ordered[part]
            levels = np.full(len(x), min_level - 1, np.int8)
            for level in range(min_level, max_level + 1):
                levels += x < np.uint64(1 << (61 - 2 * level))
            shared[part] = levels

        map_chunks(work, len(shared), 1 << 18)
        order = np.argsort(shared, kind="stable")  # positions grouped by level, ascending within a level
        bounds = np.concatenate(([0], np.cumsum(np.bincount(shared - (min_level - 1),
                                                             minlength=max_level - min_level + 2))))
        by_level = [order[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]
        return cls(lat, lon, leaves, ordered, min_level, max_level, by_level, time.perf_counter() - start)

    def pairs_split_below(self, level: int) -> np.ndarray:
        return self.by_level[level - (self.min_level - 1)]

    def run_sums(self, run_starts: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
        """``(R, 3)`` sums of the photos' unit vectors over runs of ``sorted`` starting at
        ``run_starts`` (ascending, the first 0). Every copy of a leaf id lies in one run, so a photo's
        run follows from its leaf id, in input order, with no argsort of the photos."""
        first_leaf = self.sorted[run_starts]

        def work(part: slice) -> np.ndarray:
            run = np.searchsorted(first_leaf, self.leaves[part], side="right") - 1
            xyz = to_unit_vectors(self.lat[part], self.lon[part])
            return np.stack([np.bincount(run, weights=xyz[:, k], minlength=len(first_leaf)) for k in range(3)], 1)

        return np.sum(map_chunks(work, len(self.leaves), chunk), axis=0)  # chunk order: the same sum every run


def _gather_ranges(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``concatenate([values[a:b] for a, b in zip(lo, hi)])`` without the Python loop."""
    lengths = hi - lo
    firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # where each range begins in the output
    return values[np.repeat(lo - firsts, lengths) + np.arange(int(lengths.sum()))]


def _split(photos: _SortedPhotos, t_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Final runs of the top-down split: ``(starts, sizes, levels)`` over ``photos.sorted``, in order.

    Every photo starts in its level-``min_level`` cell, and a cell holding more than ``t_max``
    photos passes them to its children, down to ``max_level``. A cell is a run of the sorted leaf
    ids; its children's runs start at the pairs inside it that share no level-``L + 1`` cell (at
    most 3), so each level costs work per over-full cell, not per photo.
    """
    n = len(photos.sorted)
    starts = np.concatenate(([0], photos.pairs_split_below(photos.min_level - 1) + 1))
    ends = np.append(starts[1:], n)
    done: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for level in range(photos.min_level, photos.max_level + 1):
        sizes = ends - starts
        split = sizes > t_max if level < photos.max_level else np.zeros(len(sizes), bool)
        done.append((starts[~split], sizes[~split], np.full(int((~split).sum()), level, np.int64)))
        if not split.any():
            break
        a, b = starts[split], ends[split]
        inside = photos.pairs_split_below(level)  # pairs sharing the level-L cell but not a child
        children = _gather_ranges(inside, np.searchsorted(inside, a), np.searchsorted(inside, b - 1)) + 1
        starts = np.sort(np.concatenate((a, children)))
        parent = np.searchsorted(a, starts, side="right") - 1
        ends = np.minimum(np.append(starts[1:], n), b[parent])
    starts, sizes, levels = (np.concatenate(parts) for parts in zip(*done))
    order = np.argsort(starts)
    return starts[order], sizes[order], levels[order]


def _check_build_arguments(lat, lon, t_maxes: Sequence[int], t_min: int, min_level: int, max_level: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = check_coordinates(lat, lon, "photo locations")
    lat, lon = lat.ravel(), lon.ravel()
    if not len(lat):
        raise ValueError("no photo locations to build a partition from")
    if int(t_min) != t_min or t_min < 1:
        raise ValueError(f"t_min must be an integer >= 1, got {t_min}")
    for t_max in t_maxes:
        if int(t_max) != t_max or t_max < t_min:
            raise ValueError(f"t_max must be an integer >= t_min ({t_min}), got {t_max}")
    if len(set(t_maxes)) != len(t_maxes):
        raise ValueError(f"t_max values repeat: {list(t_maxes)}")
    if not 0 <= min_level <= max_level <= MAX_LEVEL:
        raise ValueError(f"need 0 <= min_level <= max_level <= {MAX_LEVEL}, got min_level={min_level}, "
                         f"max_level={max_level}")
    return lat, lon


def build_partitions(lat, lon, t_maxes: Sequence[int], t_min: int = 50, min_level: int = 2, max_level: int = 20,
                     progress: bool = True) -> list[tuple[GeoCellPartition, PartitionStats]]:
    """Several adaptive partitions of the same photos, one per ``t_max``, coarsest (largest ``t_max``)
    first: TIB GeoEstimation's multi-partition scheme (t_max 5000 / 2000 / 1000, t_min 50). The
    photos' cell ids are computed and sorted once, and their unit vectors summed in one pass over
    the common refinement of all the partitions. Partitions built in one call nest: each finer cell
    lies inside one coarser cell (:func:`ancestor_index`). See :func:`build_partition`."""
    t_maxes = sorted((int(t) for t in t_maxes), reverse=True)
    if not t_maxes:
        raise ValueError("no t_max given")
    lat, lon = _check_build_arguments(lat, lon, t_maxes, t_min, min_level, max_level)
    from tqdm import tqdm

    with tqdm(total=3, desc="S2 partition", disable=not progress, leave=False) as bar:
        bar.set_postfix_str(f"cell ids of {len(lat)} photos")
        photos = _SortedPhotos.of(lat, lon, min_level, max_level)
        bar.update()
        bar.set_postfix_str(f"splitting for t_max {t_maxes}")
        splits, seconds = [], []
        for t_max in t_maxes:
            start = time.perf_counter()
            starts, sizes, levels = _split(photos, t_max)
            kept = sizes >= t_min
            if not kept.any():
                raise ValueError(f"no cell holds t_min={t_min} photos (t_max={t_max}, {len(lat)} photos, largest "
                                 f"cell {int(sizes.max())}): nothing would be kept")
            splits.append((starts, sizes, levels, kept))
            seconds.append(time.perf_counter() - start)
        bar.update()
        bar.set_postfix_str("mean locations")
        start = time.perf_counter()
        atoms = np.unique(np.concatenate([starts for starts, *_ in splits]))
        atom_sums = photos.run_sums(atoms)
        share = (time.perf_counter() - start) / len(t_maxes)
        built = []
        for t_max, (starts, sizes, levels, kept), split_seconds in zip(t_maxes, splits, seconds):
            start = time.perf_counter()
            sums = np.add.reduceat(atom_sums, np.searchsorted(atoms, starts))[kept]
            # runs follow leaf order, so their cells are in cell-id order already
            ids = np.zeros(int(kept.sum()), np.uint64)
            for level in np.unique(levels[kept]):
                at = levels[kept] == level
                ids[at] = parent_ids(photos.sorted[starts[kept][at]], int(level))
            lat_mean, lon_mean = to_degrees(sums)
            lat_center, lon_center = cell_centers(ids)
            partition = GeoCellPartition(ids, sizes[kept], lat_mean, lon_mean, lat_center, lon_center, "built")
            built.append((partition, PartitionStats(
                t_max=t_max, t_min=int(t_min), photos_in=len(lat), photos_kept=int(sizes[kept].sum()),
                photos_dropped=int(sizes[~kept].sum()), cells_kept=int(kept.sum()), cells_dropped=int((~kept).sum()),
                min_level_used=int(levels[kept].min()), max_level_used=int(levels[kept].max()),
                seconds=split_seconds + share + time.perf_counter() - start, shared_seconds=photos.seconds)))
        bar.update()
    return built


def build_partition(lat, lon, t_max: int, t_min: int, min_level: int = 2, max_level: int = 20,
                    progress: bool = True) -> tuple[GeoCellPartition, PartitionStats]:
    """PlaNet's adaptive S2 partition of photo locations (degrees, ``(N,)``).

    Every photo starts in its level-``min_level`` cell; a cell holding more than ``t_max`` photos
    is split into its 4 children (its photos move one level down) until ``max_level``, where cells
    stay whatever they hold; finally cells holding fewer than ``t_min`` photos are dropped together
    with their photos. PlaNet's wording is "fewer than t_min", which is what this does; TIB
    GeoEstimation drops cells with ``<= t_min`` photos (and also before splitting, which changes
    nothing: a cell under t_min is never split), so its partitions keep no cell of exactly t_min.

    Returns the partition (cells in cell-id order, counts, mean photo location, S2 centre) and
    :class:`PartitionStats`. ``ValueError`` for invalid coordinates, no photos, ``t_min < 1``,
    ``t_max < t_min``, levels outside ``0 <= min_level <= max_level <= 30`` or no cell kept.
    """
    return build_partitions(lat, lon, [t_max], t_min, min_level, max_level, progress)[0]


def ancestor_index(fine: GeoCellPartition, coarse: GeoCellPartition) -> np.ndarray:
    """``(len(fine),)`` int64: the class of the ``coarse`` cell containing each ``fine`` cell (the
    hierarchy matrix column of TIB GeoEstimation's f* prediction). ``ValueError`` naming the fine
    cell and both partitions' sources when a fine cell lies in no coarse cell (partitions built from
    different photos or settings need not nest)."""
    order, lo, hi = coarse._sorted_ranges()
    fine_lo, fine_hi = range_min(fine.cell_ids), range_max(fine.cell_ids)
    at = np.searchsorted(lo, fine_lo, side="right") - 1
    inside = at >= 0
    inside[inside] = fine_hi[inside] <= hi[at[inside]]
    if not inside.all():
        k = int(np.flatnonzero(~inside)[0])
        raise ValueError(f"fine cell {fine.tokens[k]} (class {k} of {fine.source}) lies in no cell of {coarse.source}: "
                         f"the partitions do not nest ({int((~inside).sum())} such cells)")
    return order[at].astype(np.int64)
