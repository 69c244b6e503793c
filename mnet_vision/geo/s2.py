"""S2 cell ids for many points at once: numpy-vectorised leaf ids, parents, levels, ranges and tokens.

The official binding (``s2geometry``) converts one point per Python call (about 6 µs each), which
is minutes for the tens of millions of photos a partition is built from. :func:`leaf_cell_ids`
computes the same level-30 ids with whole-array operations. It is written by hand from the S2
definition (no library offers a vectorised path): the point's cube face is the axis of its largest
``|x|``, ``|y|``, ``|z|`` component; ``(u, v)`` on that face are the other two components divided
by it; S2's default quadratic projection maps ``u`` to ``s`` in [0, 1]; ``i = floor(2^30 s)``
clamped to [0, 2^30) (see :func:`_uv_to_ij`); and the position along the face's Hilbert curve is
read 4 bits of ``i`` and ``j`` at a time from a table of 4-level sub-curves in each of the 4
orientations. Each step copies the C++ library's floating-point operations in the same order, so
the ids agree bit for bit (the tests compare with ``s2geometry`` on random points, poles, face
edges, cube corners, cell corners and points exactly on leaf-cell edges).

A cell id (uint64): 3 face bits, then 2 bits per level of Hilbert position, then a single 1 bit
(the "sentinel") whose position gives the level: a level-``L`` cell's lowest set bit is bit
``2 (30 - L)``. A token is the id in hex with trailing zeros stripped (``"X"`` for id 0).

Per-cell geometry (:func:`cell_centers`, :func:`cell_vertices`) goes through ``s2geometry``: cells
number thousands, not millions.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MAX_LEVEL = 30
_MAX_SIZE = 1 << MAX_LEVEL  # leaf cells along a face edge
_LOOKUP_BITS = 4
_SWAP, _INVERT = 1, 2
# The Hilbert curve's four sub-cells in curve order, as (i << 1 | j), per orientation, and how
# entering each sub-cell changes the orientation (S2's kPosToIJ and kPosToOrientation)
_POS_TO_IJ = ((0, 1, 3, 2), (0, 2, 3, 1), (3, 2, 0, 1), (3, 1, 0, 2))
_POS_TO_ORIENTATION = (_SWAP, 0, 0, _INVERT | _SWAP)
_U64 = np.uint64
_ONE = _U64(1)
# Bits at even positions: where a valid cell id's lowest set bit may lie
_EVEN_BITS = _U64(0x5555555555555555)


def _lookup_table() -> np.ndarray:
    """``table[(i4 << 6) | (j4 << 2) | orientation] = (pos8 << 2) | new_orientation``: for 4 bits of
    ``i`` and ``j`` inside a sub-square entered with ``orientation``, the 8 bits of Hilbert position
    and the orientation in which the next finer sub-square is entered."""
    table = np.zeros(1 << (2 * _LOOKUP_BITS + 2), dtype=np.uint64)

    def walk(level: int, i: int, j: int, start: int, pos: int, orientation: int) -> None:
        if level == _LOOKUP_BITS:
            table[(((i << _LOOKUP_BITS) + j) << 2) + start] = (pos << 2) + orientation
            return
        for k in range(4):
            r = _POS_TO_IJ[orientation][k]
            walk(level + 1, (i << 1) + (r >> 1), (j << 1) + (r & 1), start, (pos << 2) + k,
                 orientation ^ _POS_TO_ORIENTATION[k])

    for orientation in range(4):
        walk(0, 0, 0, orientation, 0, orientation)
    return table


_LOOKUP_POS = _lookup_table()


def _points(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors of points in degrees, computed as ``S2LatLng::ToPoint`` does (same operations,
    same order, so the same bits)."""
    phi, theta = np.radians(lat), np.radians(lon)
    cos_phi = np.cos(phi)
    return np.cos(theta) * cos_phi, np.sin(theta) * cos_phi, np.sin(phi)


def _face_uv(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cube face (0..5) of each point and its ``(u, v)`` in [-1, 1] on that face.

    The face is S2's ``LargestAbsComponent`` with its tie rule (x wins only when strictly largest,
    then y over z only when strictly larger), +3 when that component is negative. ``(u, v)`` are
    S2's ``ValidFaceXYZtoUV``: on the positive faces (numerator a, numerator b) / component with
    (a, b) = (y, z), (-x, z), (-x, -y) for the x, y, z axes; the negative faces swap a and b.
    """
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    on_x = (ax > ay) & (ax > az)
    on_y = ~on_x & (ay > az)
    on_z = ~(on_x | on_y)
    # Selecting by multiplying with 0/1 masks is ~5x faster than np.where/np.choose here and exact:
    # the chosen value plus signed zeros is that value (at worst a zero changes sign, and S2 maps
    # u = +0 and -0 alike); the component divided by is the largest, never zero.
    mx, my, mz = on_x.astype(np.float64), on_y.astype(np.float64), on_z.astype(np.float64)
    component = mx * x + my * y + mz * z
    negative = component < 0
    a = mx * y - (my + mz) * x
    b = (mx + my) * z - mz * y
    swap = negative.astype(np.float64)
    keep = 1.0 - swap
    face = on_y.astype(np.intp) + 2 * on_z + 3 * negative
    return face, (keep * a + swap * b) / component, (keep * b + swap * a) / component


def _uv_to_ij(u: np.ndarray) -> np.ndarray:
    """Leaf-cell coordinate in [0, 2^30) of ``u`` by S2's quadratic projection and ``STtoIJ``.

    S2 writes ``STtoIJ`` as ``FastIntRound(2^30 s - 0.5)``; the s2geometry build rounds the halves
    up there (checked on constructed points with ``2^30 s`` an exact odd integer, where round-half-
    even would give one less), which is ``floor(2^30 s)`` (exact: ``2^30 s`` scales by a power of 2).
    """
    with np.errstate(invalid="ignore"):  # the branch not taken takes sqrt of a negative number
        s = np.where(u >= 0, 0.5 * np.sqrt(1 + 3 * u), 1 - 0.5 * np.sqrt(1 - 3 * u))
    return np.clip(np.floor(_MAX_SIZE * s), 0, _MAX_SIZE - 1).astype(np.uint64)


def _face_ij_to_ids(face: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Leaf cell ids from faces and ``(i, j)`` (S2's ``FromFaceIJ``), 4 bits of each per table step."""
    n = face.astype(np.uint64) << _U64(60)
    bits = (face.astype(np.uint64) & _U64(_SWAP))
    mask = _U64((1 << _LOOKUP_BITS) - 1)
    for k in range(7, -1, -1):
        shift = _U64(k * _LOOKUP_BITS)
        bits += ((i >> shift) & mask) << _U64(_LOOKUP_BITS + 2)
        bits += ((j >> shift) & mask) << _U64(2)
        bits = _LOOKUP_POS[bits]
        n |= (bits >> _U64(2)) << _U64(2 * k * _LOOKUP_BITS)
        bits &= _U64(_SWAP | _INVERT)
    return n * _U64(2) + _ONE


def _leaf_ids_of_xyz(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Leaf cell ids of points given as (not necessarily unit) vectors, as ``S2CellId(S2Point)``."""
    face, u, v = _face_uv(x, y, z)
    return _face_ij_to_ids(face, _uv_to_ij(u), _uv_to_ij(v))


def default_threads() -> int:
    """CPU cores this process may use: numpy releases the GIL in the array operations, so chunks of
    points run in parallel threads."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_chunks(work: Callable[[slice], object], n: int, chunk: int, threads: int | None = None) -> list:
    """``[work(slice(a, a + chunk)) for a in range(0, n, chunk)]``, run on ``threads`` threads
    (default :func:`default_threads`), results in chunk order."""
    parts = [slice(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    threads = min(threads or default_threads(), len(parts))
    if threads <= 1:
        return [work(part) for part in parts]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, parts))


def leaf_cell_ids(lat, lon, chunk: int = 1 << 16, threads: int | None = None) -> np.ndarray:
    """Level-30 S2 cell ids, ``(N,)`` uint64, of points given in degrees (any shape, flattened).

    Coordinates are not range-checked here (callers use
    :func:`mnet_vision.geo.distances.check_coordinates`); NaN gives a meaningless id. Points are
    done ``chunk`` at a time, so that the temporary arrays stay in cache, on ``threads`` threads.
    """
    lat = np.asarray(lat, np.float64).ravel()
    lon = np.asarray(lon, np.float64).ravel()
    if lat.shape != lon.shape:
        raise ValueError(f"{lat.size} latitudes but {lon.size} longitudes")
    out = np.empty(lat.size, dtype=np.uint64)

    def work(part: slice) -> None:
        out[part] = _leaf_ids_of_xyz(*_points(lat[part], lon[part]))

    map_chunks(work, lat.size, chunk, threads)
    return out


def _as_ids(ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype != np.uint64:
        if ids.size and (ids.dtype.kind not in "iu" or (ids.dtype.kind == "i" and (ids < 0).any())):
            raise ValueError(f"cell ids must be non-negative integers (uint64), got dtype {ids.dtype}")
        ids = ids.astype(np.uint64)
    return ids


def _lowest_bit(ids: np.ndarray) -> np.ndarray:
    return ids & (~ids + _ONE)  # two's complement: -id & id


def _level_lsb(level: int) -> np.uint64:
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"S2 levels run from 0 to {MAX_LEVEL}, got {level}")
    return _U64(1 << (2 * (MAX_LEVEL - level)))


def parent_ids(ids, level: int) -> np.ndarray:
    """Ids of the level-``level`` ancestors of cells at level ``>= level`` (a cell at ``level`` is its
    own parent). Parents of an ascending array are ascending."""
    ids, lsb = _as_ids(ids), _level_lsb(level)
    return (ids & (~lsb + _ONE)) | lsb  # keep the bits above the new sentinel, set it


def cell_levels(ids) -> np.ndarray:
    """Levels (0..30), int64, of valid cell ids (from the position of the lowest set bit)."""
    lsb = _lowest_bit(_as_ids(ids))
    # a power of two is exact in float64, so frexp's exponent is its bit position + 1
    return MAX_LEVEL - (np.frexp(lsb.astype(np.float64))[1].astype(np.int64) - 1) // 2


def range_min(ids) -> np.ndarray:
    """Smallest leaf id inside each cell: a cell is the contiguous id range [range_min, range_max]."""
    ids = _as_ids(ids)
    return ids - (_lowest_bit(ids) - _ONE)


def range_max(ids) -> np.ndarray:
    """Largest leaf id inside each cell."""
    ids = _as_ids(ids)
    return ids + (_lowest_bit(ids) - _ONE)


def is_valid(ids) -> np.ndarray:
    """Whether each id is a valid S2 cell: non-zero, face <= 5, lowest set bit at an even position."""
    ids = _as_ids(ids)
    return (ids != 0) & ((ids >> _U64(61)) <= 5) & ((_lowest_bit(ids) & _EVEN_BITS) != 0)


def ids_to_tokens(ids) -> list[str]:
    """S2 tokens of cell ids: hex with trailing zeros stripped, ``"X"`` for id 0."""
    return [f"{int(i):016x}".rstrip("0") or "X" for i in _as_ids(ids).ravel()]


def tokens_to_ids(tokens: Iterable[str] | str) -> np.ndarray:
    """Cell ids (uint64) of S2 tokens (``"X"`` is id 0, as in S2). ``ValueError`` naming the token and
    its position when one is empty, not hex or longer than 16 digits; whether the ids are valid
    cells is for the caller to check (:func:`is_valid`)."""
    tokens = [tokens] if isinstance(tokens, str) else list(tokens)
    out = np.empty(len(tokens), dtype=np.uint64)
    for k, token in enumerate(tokens):
        t = str(token).strip()
        if t in ("X", "x"):
            out[k] = 0
            continue
        if not 0 < len(t) <= 16 or not all(c in "0123456789abcdefABCDEF" for c in t):
            raise ValueError(f"token {k} ({token!r}) is not an S2 token: expected 1 to 16 hex digits")
        out[k] = int(t.ljust(16, "0"), 16)
    return out


def _s2():
    import s2geometry

    return s2geometry


def cell_centers(ids) -> tuple[np.ndarray, np.ndarray]:
    """``(lat, lon)`` ``(C,)`` degrees of each cell's centre (S2's ``S2CellId::ToLatLng``)."""
    s2 = _s2()
    ids = _as_ids(ids).ravel()
    out = np.empty((len(ids), 2))
    for k, i in enumerate(ids.tolist()):
        ll = s2.S2CellId(i).ToLatLng()
        out[k] = ll.lat().degrees(), ll.lng().degrees()
    return out[:, 0], out[:, 1]


def cell_vertices(ids) -> np.ndarray:
    """``(C, 4, 2)`` ``(lat, lon)`` degrees of each cell's corners, counter-clockwise (S2's
    ``S2Cell::GetVertex`` order)."""
    s2 = _s2()
    ids = _as_ids(ids).ravel()
    out = np.empty((len(ids), 4, 2))
    for k, i in enumerate(ids.tolist()):
        cell = s2.S2Cell(s2.S2CellId(i))
        for v in range(4):
            ll = s2.S2LatLng(cell.GetVertex(v))
            out[k, v] = ll.lat().degrees(), ll.lng().degrees()
    return out
