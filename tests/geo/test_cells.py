"""PlaNet's adaptive partition on constructed photo sets with known answers, against a per-photo
reference built with s2geometry, across the antimeridian, through CSV files (and each way a CSV can
be wrong), and nested partitions."""
import collections

import numpy as np
import pytest
import s2geometry as s2

from mnet_vision.geo.cells import GeoCellPartition, ancestor_index, build_partition, build_partitions
from mnet_vision.geo.distances import great_circle_km
from mnet_vision.geo.s2 import cell_levels, ids_to_tokens, parent_ids, tokens_to_ids

PARIS, TOKYO, SYDNEY, NAIROBI = (48.8566, 2.3522), (35.6762, 139.6503), (-33.8688, 151.2093), (-1.2921, 36.8219)


def s2_cell(lat: float, lon: float, level: int):
    return s2.S2CellId(s2.S2LatLng.FromDegrees(lat, lon)).parent(level)


def centre(cell) -> tuple[float, float]:
    ll = cell.ToLatLng()
    return ll.lat().degrees(), ll.lng().degrees()


def repeat(point, n):
    return [point] * n


def reference_partition(lat, lon, t_max, t_min, min_level, max_level) -> dict[int, int]:
    """The algorithm as written, one photo at a time with s2geometry: {cell id: photos}."""
    leaves = [s2.S2CellId(s2.S2LatLng.FromDegrees(a, b)) for a, b in zip(lat, lon)]
    level = {k: min_level for k in range(len(leaves))}
    while True:
        counts = collections.Counter(leaves[k].parent(level[k]).id() for k in level)
        full = [k for k in level if counts[leaves[k].parent(level[k]).id()] > t_max and level[k] < max_level]
        if not full:
            return {cell: n for cell, n in counts.items() if n >= t_min}
        for k in full:
            level[k] += 1


@pytest.fixture(scope="module")
def clusters():
    """Photos in constructed cells (min_level 5, t_max 100, t_min 50):
    Paris's level-5 cell P holds 150 photos: 60 at the centre of each of its first two children and
    30 in the third, so P splits; the children keep 60, 60 and drop 30. Tokyo: 80 photos, no split.
    Sydney: 49 photos (t_min - 1), dropped. Nairobi: 50 (exactly t_min), kept. Plus 200 noise photos
    spread over the globe outside those cells (each level-5 cell gets far fewer than 50)."""
    paris = s2_cell(*PARIS, 5)
    children = [paris.child(k) for k in range(4)]
    points = (repeat(centre(children[0]), 60) + repeat(centre(children[1]), 60) + repeat(centre(children[2]), 30)
              + repeat(TOKYO, 80) + repeat(SYDNEY, 49) + repeat(NAIROBI, 50))
    taken = {s2_cell(*p, 5).id() for p in points}
    rng = np.random.default_rng(0)
    v = rng.standard_normal((400, 3))
    noise_lat = np.degrees(np.arcsin(v[:, 2] / np.linalg.norm(v, axis=1)))
    noise_lon = np.degrees(np.arctan2(v[:, 1], v[:, 0]))
    noise = [(a, b) for a, b in zip(noise_lat, noise_lon) if s2_cell(a, b, 5).id() not in taken][:200]
    lat, lon = np.array(points + noise).T
    return {"lat": lat, "lon": lon, "children": children, "noise": noise}


def test_constructed_clusters(clusters):
    partition, stats = build_partition(clusters["lat"], clusters["lon"], t_max=100, t_min=50, min_level=5,
                                       progress=False)
    children = clusters["children"]
    expected = {children[0].id(): 60, children[1].id(): 60, s2_cell(*TOKYO, 5).id(): 80,
                s2_cell(*NAIROBI, 5).id(): 50}
    assert dict(zip(partition.cell_ids.tolist(), partition.counts.tolist())) == expected
    assert list(partition.cell_ids) == sorted(expected)  # class order = cell-id order
    assert sorted(partition.levels.tolist()) == [5, 5, 6, 6]
    noise_cells = len({s2_cell(a, b, 5).id() for a, b in clusters["noise"]})
    assert stats.photos_in == len(clusters["lat"]) == 329 + 200
    assert stats.photos_kept == 250 and stats.photos_dropped == 30 + 49 + 200
    assert stats.cells_kept == 4 and stats.cells_dropped == 1 + 1 + noise_cells
    assert (stats.min_level_used, stats.max_level_used) == (5, 6)
    # photos at one point: the mean is that point; the centre is the S2 cell's
    tokyo = int(np.flatnonzero(partition.cell_ids == s2_cell(*TOKYO, 5).id())[0])
    assert great_circle_km(partition.lat_mean[tokyo], partition.lon_mean[tokyo], *TOKYO) < 1e-6
    assert (partition.lat_center[tokyo], partition.lon_center[tokyo]) == centre(s2_cell(*TOKYO, 5))


def test_t_min_boundary_and_tib_difference(clusters):
    partition, _ = build_partition(clusters["lat"], clusters["lon"], t_max=100, t_min=50, min_level=5, progress=False)
    tokens = set(partition.tokens)
    assert s2_cell(*NAIROBI, 5).ToToken() in tokens  # exactly t_min photos: kept (PlaNet's "fewer than")
    assert s2_cell(*SYDNEY, 5).ToToken() not in tokens  # t_min - 1: dropped
    stricter, _ = build_partition(clusters["lat"], clusters["lon"], t_max=100, t_min=51, min_level=5, progress=False)
    assert s2_cell(*NAIROBI, 5).ToToken() not in set(stricter.tokens)  # what TIB's "<= 50" would do


def test_splits_stop_at_max_level():
    lat, lon = np.array(repeat(PARIS, 500)).T
    partition, stats = build_partition(lat, lon, t_max=100, t_min=10, min_level=2, max_level=9, progress=False)
    assert partition.tokens == [s2_cell(*PARIS, 9).ToToken()] and partition.counts.tolist() == [500]
    assert (stats.min_level_used, stats.max_level_used) == (9, 9) and stats.photos_dropped == 0
    whole, _ = build_partition(lat, lon, t_max=100, t_min=10, min_level=0, max_level=30, progress=False)
    assert whole.tokens == [s2_cell(*PARIS, 30).ToToken()]  # one leaf cell, however full


def test_matches_the_per_photo_reference():
    rng = np.random.default_rng(1)
    centres = rng.uniform([-70, -180], [70, 180], (6, 2))
    which = rng.integers(0, 6, 2500)
    spread = rng.choice([0.02, 0.5, 4.0], 6)[which]
    lat = np.clip(centres[which, 0] + rng.normal(0, 1, 2500) * spread, -90, 90)
    lon = (centres[which, 1] + rng.normal(0, 1, 2500) * spread + 180) % 360 - 180
    lat[:100], lon[:100] = lat[100:200], lon[100:200]  # repeated locations
    for t_max, t_min, min_level, max_level in [(100, 5, 2, 20), (300, 1, 0, 30), (40, 10, 5, 8), (2500, 1, 3, 3)]:
        partition, stats = build_partition(lat, lon, t_max, t_min, min_level, max_level, progress=False)
        expected = reference_partition(lat, lon, t_max, t_min, min_level, max_level)
        assert dict(zip(partition.cell_ids.tolist(), partition.counts.tolist())) == expected
        assert stats.photos_kept == sum(expected.values())
        assert stats.photos_kept + stats.photos_dropped == stats.photos_in == 2500
        assert (np.diff(partition.cell_ids.astype(np.float64)) > 0).all()


def test_antimeridian_cluster_mean():
    # Fiji-like photos on both sides of 180 degrees. S2 cells of level >= 1 never straddle the
    # antimeridian (it is a level-1 edge), so one cell holds them all only at level 0 (face 3).
    rng = np.random.default_rng(2)
    lat = -17.5 + rng.normal(0, 0.3, 200)
    lon = 179.8 + rng.normal(0, 0.3, 200)
    lon = (lon + 180) % 360 - 180
    assert (lon > 0).any() and (lon < 0).any()
    partition, _ = build_partition(lat, lon, t_max=1000, t_min=1, min_level=0, max_level=0, progress=False)
    assert partition.tokens == ["7"] and partition.counts.tolist() == [200]
    assert abs(partition.lat_mean[0] + 17.5) < 0.1
    assert abs(abs(partition.lon_mean[0]) - 180) < 0.5  # not the arithmetic mean near 0
    assert great_circle_km(partition.lat_mean[0], partition.lon_mean[0], -17.5, 179.8) < 15


def test_assign_agrees_with_s2geometry_lookups(clusters):
    partition, stats = build_partition(clusters["lat"], clusters["lon"], t_max=100, t_min=50, min_level=5,
                                       progress=False)
    by_token = {token: k for k, token in enumerate(partition.tokens)}
    rng = np.random.default_rng(3)
    lat = np.concatenate([rng.uniform(-90, 90, 3000), clusters["lat"], rng.normal(PARIS[0], 1, 500)])
    lon = np.concatenate([rng.uniform(-180, 180, 3000), clusters["lon"], rng.normal(PARIS[1], 1, 500)])
    expected = []
    for a, b in zip(lat, lon):
        found = [by_token[s2_cell(a, b, level).ToToken()] for level in range(31)
                 if s2_cell(a, b, level).ToToken() in by_token]
        assert len(found) <= 1
        expected.append(found[0] if found else -1)
    got = partition.assign(lat, lon)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
    # every kept photo lands in its own cell, the dropped ones (Sydney, the 30, noise) in none
    photos = partition.assign(clusters["lat"], clusters["lon"])
    assert (photos >= 0).sum() == stats.photos_kept
    assert np.array_equal(np.bincount(photos[photos >= 0], minlength=len(partition)), partition.counts)
    assert partition.assign([SYDNEY[0]], [SYDNEY[1]]).tolist() == [-1]
    assert partition.assign(np.full((2, 3), TOKYO[0]), np.full((2, 3), TOKYO[1])).shape == (2, 3)
    with pytest.raises(ValueError, match="points to assign.*first at index 1"):
        partition.assign([0, 91], [0, 0])


def test_input_checks():
    lat, lon = np.array(repeat(PARIS, 10)).T
    for kwargs, message in [(dict(t_max=10, t_min=0), "t_min must be an integer >= 1"),
                            (dict(t_max=5, t_min=10), "t_max must be an integer >= t_min"),
                            (dict(t_max=10, t_min=1, min_level=6, max_level=5), "min_level <= max_level"),
                            (dict(t_max=10, t_min=1, max_level=31), "max_level <= 30"),
                            (dict(t_max=10, t_min=11), "t_max must be"),
                            (dict(t_max=100, t_min=20), "no cell holds t_min=20 photos")]:
        with pytest.raises(ValueError, match=message):
            build_partition(lat, lon, progress=False, **kwargs)
    with pytest.raises(ValueError, match="no photo locations"):
        build_partition([], [], 10, 1, progress=False)
    with pytest.raises(ValueError, match="photo locations: 1 latitude.*index 2"):
        build_partition([1, 2, 95], [0, 0, 0], 10, 1, progress=False)
    with pytest.raises(ValueError, match="t_max values repeat"):
        build_partitions(lat, lon, [10, 10], 1, progress=False)


def test_csv_round_trip(tmp_path, clusters):
    partition, _ = build_partition(clusters["lat"], clusters["lon"], t_max=100, t_min=50, min_level=5, progress=False)
    path = partition.to_csv(tmp_path / "sub" / "cells.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "class,token,level,count,lat_mean,lon_mean,lat_center,lon_center" and len(lines) == 5
    assert lines[1].split(",")[:4] == ["0", partition.tokens[0], str(partition.levels[0]), str(partition.counts[0])]
    again = GeoCellPartition.read_csv(path)
    assert again.source == str(path) and len(again) == len(partition)
    assert np.array_equal(again.cell_ids, partition.cell_ids) and np.array_equal(again.counts, partition.counts)
    for name in ("lat_mean", "lon_mean", "lat_center", "lon_center"):
        assert np.allclose(getattr(again, name), getattr(partition, name), atol=5e-7, rtol=0)
    assert not list(tmp_path.glob("sub/.*"))  # no temporary file left behind


def write_cells(tmp_path, rows: list[str],
                header: str = "class,token,level,count,lat_mean,lon_mean,lat_center,lon_center"):
    path = tmp_path / "cells.csv"
    path.write_text("\n".join([header] + rows) + "\n" if header or rows else "")
    return path


GOOD = ["0,47e4,5,100,48.8,2.3,48.9,2.4", "1,47fc,5,60,50.1,4.2,50.0,4.1"]


@pytest.mark.parametrize("rows, header, message", [
    ([], "", r"is empty; expected the header class,token"),
    ([], None, "has a header but no cells"),
    (GOOD, "class,token,level,count,lat_mean,lon_mean,lat_center", r"line 1: missing column\(s\) \['lon_center'\]"),
    (GOOD[:1] + ["1,47fc,5,60,50.1,4.2,50.0"], None, "line 3: expected 8 fields as the header, found 7"),
    (GOOD[:1] + ["2,47fc,5,60,50.1,4.2,50.0,4.1"], None,
     r"line 3: class 2, expected 1: classes must be numbered 0\.\.1"),
    (GOOD[:1] + ["x,47fc,5,60,50.1,4.2,50.0,4.1"], None, "line 3: class 'x' is not an integer"),
    (GOOD[:1] + ["1,47zz,5,60,50.1,4.2,50.0,4.1"], None, r"line 3: token '47zz' is not an S2 token"),
    (GOOD[:1] + ["1,47f8,5,60,50.1,4.2,50.0,4.1"], None, "line 3: token '47f8' is not a valid S2 cell id"),
    (GOOD[:1] + ["1,47fc,6,60,50.1,4.2,50.0,4.1"], None, "line 3: level 6 but token 47fc is a level-5 cell"),
    (GOOD[:1] + ["1,47fc,5,-1,50.1,4.2,50.0,4.1"], None, "line 3: count -1 is negative"),
    (GOOD[:1] + ["1,47fc,5,60,95.0,4.2,50.0,4.1"], None, r"line 3: lat_mean 95.0 is not a number in \[-90, 90\]"),
    (GOOD[:1] + ["1,47fc,5,60,50.1,4.2,50.0,nan"], None, r"line 3: lon_center nan is not a number in \[-180, 180\]"),
    (GOOD[:1] + ["1,47fc,5,60,50.1,east,50.0,4.1"], None, "line 3: lon_mean 'east' is not a number"),
    (GOOD + ["2,47e4,5,10,48.8,2.3,48.9,2.4"], None, "line 4: token 47e4 repeats line 2"),
    (GOOD + ["2,47e66f,10,10,48.9,2.3,48.9,2.3"], None,
     r"cells overlap: 47e4 \(line 2, class 0\) contains 47e66f \(line 4, class 2\)"),
])
def test_bad_csv_errors_name_file_and_line(tmp_path, rows, header, message):
    path = write_cells(tmp_path, rows, *([] if header is None else [header]))
    with pytest.raises(ValueError, match=message) as error:
        GeoCellPartition.read_csv(path)
    assert str(path) in str(error.value)


def test_a_spreadsheet_csv_reads_and_its_errors_count_blank_lines(tmp_path):
    header = "class,token,level,count,lat_mean,lon_mean,lat_center,lon_center"
    path = tmp_path / "cells.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([header, GOOD[0], "", GOOD[1]]).encode() + b"\r\n")  # BOM, CRLF
    assert len(GeoCellPartition.read_csv(path)) == 2
    path.write_bytes("\n".join([header, GOOD[0], "", "", "1,47fc,5,-1,50.1,4.2,50.0,4.1"]).encode())
    with pytest.raises(ValueError, match="line 5: count -1 is negative"):
        GeoCellPartition.read_csv(path)
    path.write_bytes("\n".join([header, GOOD[0].replace("47e4", "47\xe94")]).encode("latin-1"))
    with pytest.raises(ValueError, match=r"cells.csv, line 2, column 5 .*is not UTF-8"):
        GeoCellPartition.read_csv(path)


def test_constructor_checks():
    ids = tokens_to_ids(["47e4", "47e66f"])
    with pytest.raises(ValueError,
                       match=r"built: cells must be disjoint, but class 0 \(47e4\) contains class 1 \(47e66f\)"):
        GeoCellPartition(ids, [1, 1], [0, 0], [0, 0], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="counts has shape"):
        GeoCellPartition(ids[:1], [1, 1], [0], [0], [0], [0])
    with pytest.raises(ValueError, match="class 0 is not a valid S2 cell"):
        GeoCellPartition(np.array([2], np.uint64), [1], [0], [0], [0], [0])


def test_nested_partitions_and_ancestors(tmp_path):
    rng = np.random.default_rng(4)
    hubs = np.array([PARIS, TOKYO, SYDNEY, NAIROBI, (40.7, -74.0)])
    which = rng.choice(5, 20_000, p=[0.4, 0.3, 0.1, 0.1, 0.1])
    lat = hubs[which, 0] + rng.normal(0, 1.0, 20_000)
    lon = hubs[which, 1] + rng.normal(0, 1.0, 20_000)
    built = build_partitions(lat, lon, [500, 2000, 1000], t_min=20, progress=False)
    assert [stats.t_max for _, stats in built] == [2000, 1000, 500]  # coarsest first
    sizes = [len(p) for p, _ in built]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for (partition, stats), t_max in zip(built, [2000, 1000, 500]):
        alone, alone_stats = build_partition(lat, lon, t_max, 20, progress=False)  # same as built one at a time
        assert np.array_equal(alone.cell_ids, partition.cell_ids) and np.array_equal(alone.counts, partition.counts)
        assert np.allclose(alone.lat_mean, partition.lat_mean) and alone_stats.photos_kept == stats.photos_kept
    coarse, fine = built[0][0], built[-1][0]
    parents = ancestor_index(fine, coarse)
    assert parents.dtype == np.int64 and parents.shape == (len(fine),)
    levels = coarse.levels[parents]
    assert (levels <= fine.levels).all()
    assert np.array_equal(coarse.cell_ids[parents], np.array(
        [parent_ids(fine.cell_ids[k:k + 1], int(levels[k]))[0] for k in range(len(fine))], np.uint64))
    assert np.array_equal(ancestor_index(coarse, coarse), np.arange(len(coarse)))
    # partitions of other photos need not nest: the error names the cell and both sources
    other, _ = build_partition(lat[which == 0], lon[which == 0], 5000, 20, progress=False)
    coarse_file = GeoCellPartition.read_csv(other.to_csv(tmp_path / "other.csv"))
    with pytest.raises(ValueError, match=rf"fine cell \w+ \(class \d+ of built\) lies in no cell of {tmp_path}.*"
                                         "do not nest"):
        ancestor_index(fine, coarse_file)


def test_levels_tokens_and_any_class_order():
    tokio = s2_cell(*TOKYO, 10).ToToken()
    tokens = ["89c25", "47e4", tokio]  # not in cell-id order: a partition read from elsewhere may not be
    ids = tokens_to_ids(tokens)
    partition = GeoCellPartition(ids, [3, 2, 1], [40.7, 48.8, 35.7], [-74.0, 2.3, 139.6], [0, 0, 0], [0, 0, 0])
    assert partition.tokens == tokens == ids_to_tokens(ids)
    assert partition.levels.tolist() == cell_levels(ids).tolist() == [8, 5, 10]
    assert len(partition) == 3
    lat, lon = np.array([(40.75, -73.99), (48.8584, 2.2945), TOKYO, (-30.0, 0.0)]).T
    expected = [next((k for k, t in enumerate(tokens)
                      if s2_cell(a, b, int(cell_levels(tokens_to_ids(t))[0])).ToToken() == t),
                     -1) for a, b in zip(lat, lon)]
    assert expected[1:] == [1, 2, -1]
    assert partition.assign(lat, lon).tolist() == expected


def test_partition_arrays_are_read_only_copies():
    ids = tokens_to_ids(["47e4", "89c25"])
    partition = GeoCellPartition(ids, [1, 2], [0, 0], [0, 0], [0, 0], [0, 0])
    ids[0] = 0  # the caller's array is not the partition's
    assert partition.tokens[0] == "47e4"
    with pytest.raises(ValueError, match="read-only"):
        partition.counts[0] = 5
    with pytest.raises(ValueError, match="non-negative integers"):
        GeoCellPartition(np.array([1.5]), [1], [0], [0], [0], [0])
