"""The vectorised S2 path against the official library (s2geometry) bit for bit: random points on the
sphere, the hard cases (poles, the antimeridian, face edges and cube corners, cell corners), parents,
levels, ranges, validity and tokens; the Eiffel Tower's level-10 and level-5 tokens as s2geometry writes them."""
import math

import numpy as np
import pytest
import s2geometry as s2

from mnet_vision.geo.s2 import (
    cell_centers,
    cell_levels,
    cell_vertices,
    ids_to_tokens,
    is_valid,
    leaf_cell_ids,
    parent_ids,
    range_max,
    range_min,
    tokens_to_ids,
)

EIFFEL = (48.8584, 2.2945)
CORNER_LAT = math.degrees(math.atan(1 / math.sqrt(2)))  # |x| = |y| = |z| at lon 45 + 90 k


def s2_leaves(lat, lon) -> np.ndarray:
    return np.array([s2.S2CellId(s2.S2LatLng.FromDegrees(a, b)).id() for a, b in zip(np.ravel(lat).tolist(),
                                                                                   np.ravel(lon).tolist())], np.uint64)


def random_sphere_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.random.default_rng(seed).standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.degrees(np.arcsin(v[:, 2])), np.degrees(np.arctan2(v[:, 1], v[:, 0]))


def with_neighbours(values) -> list[float]:
    """Each value and the doubles on either side of it (where rounding decides the face or cell)."""
    return [w for v in values for w in (np.nextafter(v, -np.inf), v, np.nextafter(v, np.inf))]


def hard_points() -> tuple[np.ndarray, np.ndarray]:
    lats = with_neighbours([-90, -CORNER_LAT, -45, 0, 45, CORNER_LAT, 90, 1e-300, -1e-300])
    lons = with_neighbours([-180, -135, -90, -45, 0, 45, 90, 135, 180, 1e-300])
    lat, lon = np.meshgrid(np.clip(lats, -90, 90), np.clip(lons, -180, 180))
    return lat.ravel(), lon.ravel()


def test_random_points_match_s2geometry():
    lat, lon = random_sphere_points(20_000, seed=0)
    assert np.array_equal(leaf_cell_ids(lat, lon), s2_leaves(lat, lon))


def test_hard_points_match_s2geometry():
    lat, lon = hard_points()
    ours, theirs = leaf_cell_ids(lat, lon), s2_leaves(lat, lon)
    bad = np.flatnonzero(ours != theirs)
    assert not len(bad), [(lat[k], lon[k]) for k in bad[:5]]
    assert len(set((theirs >> np.uint64(61)).tolist())) == 6  # all six faces reached


def test_cell_corners_and_edges_match_s2geometry():
    # points exactly on cell corners at several levels (where i, j rounding decides), plus their neighbours
    lat, lon = random_sphere_points(300, seed=1)
    ids = s2_leaves(lat, lon)
    corners = []
    for k, leaf in enumerate(ids.tolist()):
        cell = s2.S2Cell(s2.S2CellId(leaf).parent(2 + k % 27))
        for v in range(4):
            ll = s2.S2LatLng(cell.GetVertex(v))
            corners.append((ll.lat().degrees(), ll.lng().degrees()))
    corners = np.array(corners)
    lat = np.clip(with_neighbours(corners[:, 0]), -90, 90)
    lon = np.clip(with_neighbours(corners[:, 1]), -180, 180)
    assert np.array_equal(leaf_cell_ids(lat, lon), s2_leaves(lat, lon))


def test_shapes_and_threads():
    lat, lon = random_sphere_points(1000, seed=2)
    one = leaf_cell_ids(lat, lon, chunk=97, threads=1)
    assert one.dtype == np.uint64
    assert np.array_equal(one, leaf_cell_ids(lat, lon, chunk=97, threads=2))
    assert np.array_equal(leaf_cell_ids(lat.reshape(10, 100), lon.reshape(10, 100)), one)
    assert leaf_cell_ids([], []).shape == (0,)
    with pytest.raises(ValueError, match="3 latitudes but 2 longitudes"):
        leaf_cell_ids([1, 2, 3], [1, 2])


@pytest.mark.parametrize("level", [0, 1, 2, 5, 10, 13, 20, 29, 30])
def test_parents_levels_and_ranges_match_s2geometry(level):
    lat, lon = random_sphere_points(2000, seed=3)
    leaves = leaf_cell_ids(lat, lon)
    parents = parent_ids(leaves, level)
    cells = [s2.S2CellId(i).parent(level) for i in leaves.tolist()]
    assert np.array_equal(parents, np.array([c.id() for c in cells], np.uint64))
    assert (cell_levels(parents) == level).all()
    assert np.array_equal(range_min(parents), np.array([c.range_min().id() for c in cells], np.uint64))
    assert np.array_equal(range_max(parents), np.array([c.range_max().id() for c in cells], np.uint64))
    assert ids_to_tokens(parents) == [c.ToToken() for c in cells]
    order = np.argsort(leaves)
    assert (np.diff(parents[order].astype(np.float64)) >= 0).all()  # parents of sorted ids stay sorted


def test_parent_of_coarser_cells():
    cells = parent_ids(leaf_cell_ids(*random_sphere_points(50, seed=4)), 12)
    assert np.array_equal(parent_ids(cells, 12), cells)  # a cell is its own parent at its level
    assert np.array_equal(parent_ids(cells, 7), parent_ids(parent_ids(cells, 9), 7))
    with pytest.raises(ValueError, match="levels run from 0 to 30"):
        parent_ids(cells, 31)


def test_eiffel_tower_tokens_from_the_reference():
    leaf = leaf_cell_ids(*EIFFEL)
    assert ids_to_tokens(parent_ids(leaf, 10)) == ["47e66f"]
    assert ids_to_tokens(parent_ids(leaf, 5)) == ["47e4"]
    parent = tokens_to_ids("47e66f")
    children = tokens_to_ids(["47e66e4", "47e66ec", "47e66f4", "47e66fc"])
    assert (cell_levels(children) == 11).all() and (parent_ids(children, 10) == parent).all()
    # the children tile the parent's leaf range in order (leaf ids are odd, so neighbours differ by 2)
    assert range_min(children)[0] == range_min(parent)[0] and range_max(children)[-1] == range_max(parent)[0]
    assert np.array_equal(range_min(children)[1:], range_max(children)[:-1] + np.uint64(2))
    lat, lon = cell_centers(parent)
    assert (round(lat[0], 4), round(lon[0], 4)) == (48.8969, 2.3253)


def test_token_round_trip():
    lat, lon = random_sphere_points(500, seed=5)
    leaves = leaf_cell_ids(lat, lon)
    cells = np.concatenate([parent_ids(leaves, level) for level in range(31)])
    tokens = ids_to_tokens(cells)
    assert np.array_equal(tokens_to_ids(tokens), cells)
    assert tokens[::37] == [s2.S2CellId(int(i)).ToToken() for i in cells[::37]]
    assert ids_to_tokens([0]) == ["X"] and tokens_to_ids(["X"])[0] == 0
    assert tokens_to_ids(["47E66F"])[0] == tokens_to_ids(["47e66f"])[0]  # S2 reads either case


@pytest.mark.parametrize("token", ["zz", "", "47e66f0000000000a", "47e66g", "0x47"])
def test_bad_tokens_are_named(token):
    with pytest.raises(ValueError, match=rf"token 1 \({token!r}\) is not an S2 token"):
        tokens_to_ids(["47e66f", token])


def test_validity_matches_s2geometry():
    rng = np.random.default_rng(6)
    random_ids = (rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2)
                  + rng.integers(0, 2, 5000, dtype=np.uint64))
    leaves = leaf_cell_ids(*random_sphere_points(200, seed=7))
    crafted = np.concatenate([
        np.array([0, 1, 2**64 - 1, 6 << 61 | 1 << 60, 7 << 61 | 1 << 60, 5 << 61 | 1 << 60, 1 << 60], np.uint64),
        leaves, leaves + np.uint64(1),  # an even id: its lowest set bit is at an odd position
        parent_ids(leaves, 3) ^ np.uint64(1 << 55)])
    for ids in (random_ids, crafted):
        expected = np.array([s2.S2CellId(int(i)).is_valid() for i in ids])
        assert np.array_equal(is_valid(ids), expected)
    assert is_valid(leaves).all() and not is_valid([0])[0] and not is_valid([7 << 61 | 1 << 60])[0]


def test_cell_geometry_matches_s2geometry():
    cells = parent_ids(leaf_cell_ids(*random_sphere_points(20, seed=8)), 6)
    lat, lon = cell_centers(cells)
    vertices = cell_vertices(cells)
    assert vertices.shape == (20, 4, 2)
    for k, i in enumerate(cells.tolist()):
        centre = s2.S2CellId(i).ToLatLng()
        assert (lat[k], lon[k]) == (centre.lat().degrees(), centre.lng().degrees())
        # the centre lies inside the corners' bounding box (no cell of level 6 is near the antimeridian here)
        if np.ptp(vertices[k, :, 1]) < 180:
            assert vertices[k, :, 0].min() <= lat[k] <= vertices[k, :, 0].max()
    assert np.array_equal(leaf_cell_ids(lat, lon) >> np.uint64(61), cells >> np.uint64(61))
    assert np.array_equal(parent_ids(leaf_cell_ids(lat, lon), 6), cells)  # a cell's centre lies in the cell


def test_rejects_non_integer_ids():
    with pytest.raises(ValueError, match="non-negative integers"):
        cell_levels(np.array([-1]))
    with pytest.raises(ValueError, match="non-negative integers"):
        parent_ids(np.array([1.5]), 3)


def test_points_exactly_on_leaf_cell_edges_match_s2geometry():
    """Vectors (1, u, 0) whose s = 0.5 sqrt(1 + 3u) is exactly n / 2^30: the one place where S2's
    rounding of 2^30 s - 0.5 shows (halves go up in s2geometry; round-half-even would differ for odd n)."""
    from mnet_vision.geo.s2 import _leaf_ids_of_xyz

    rng, found = np.random.default_rng(9), []
    for n in rng.integers(1, 2**30, 600).tolist():
        s = n / 2**30
        u = (4 * s * s - 1) / 3
        for _ in range(6):  # nudge u until the projection gives s exactly (it does for about half the n)
            got = 0.5 * math.sqrt(1 + 3 * u) if u >= 0 else 1 - 0.5 * math.sqrt(1 - 3 * u)
            if got == s:
                found.append(u)
                break
            u = float(np.nextafter(u, np.inf if got < s else -np.inf))
    u = np.array(found)
    assert len(u) > 200
    ones, zeros = np.ones_like(u), np.zeros_like(u)
    expected = np.array([s2.S2CellId(s2.S2Point_FromRaw(1.0, x, 0.0)).id() for x in u.tolist()], np.uint64)
    assert np.array_equal(_leaf_ids_of_xyz(ones, u, zeros), expected)
    assert np.array_equal(_leaf_ids_of_xyz(-ones, zeros, u), np.array(  # face 3: u = z / x
        [s2.S2CellId(s2.S2Point_FromRaw(-1.0, 0.0, x)).id() for x in u.tolist()], np.uint64))
