"""Geotagged photo lists: a CSV of image paths with their latitude and longitude (MP-16, YFCC,
Im2GPS style), checked for plausibility before anything trains on it.

The header names the columns, in any order and case: the path (``path``, ``image``, ``img_id`` or
``file``), the latitude (``lat``, ``latitude``) and the longitude (``lon``, ``lng``, ``longitude``);
other columns are ignored. Coordinates are degrees. Every error names the file and line; a file
whose latitudes fall outside [-90, 90] where its longitudes would be valid latitudes is reported as
having its columns swapped (one published Im2GPS3k CSV has its LAT/LON headers exchanged).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnet_vision.textfiles import read_csv_rows
from mnet_vision.geo.distances import invalid_coordinates

COLUMNS = {"path": ("path", "image", "img_id", "file"), "lat": ("lat", "latitude"), "lon": ("lon", "lng", "longitude")}


@dataclass
class GeotaggedPhotos:
    """``paths`` (N) as listed, ``lat`` and ``lon`` ``(N,)`` float64 degrees, ``source`` the file."""

    paths: list[str]
    lat: np.ndarray
    lon: np.ndarray
    source: str


def _column(header: list[str], role: str, path: Path, line: int) -> int:
    names = [h.strip().lower() for h in header]
    found = [i for i, h in enumerate(names) if h in COLUMNS[role]]
    if len(found) != 1:
        raise ValueError(f"{path}, line {line}: expected one {role} column named one of {COLUMNS[role]}, "
                         f"found {len(found)} in {header}")
    return found[0]


def read_geotagged_csv(path: str | Path) -> GeotaggedPhotos:
    """Read and check a geotagged photo list (see the module doc)."""
    path = Path(path)
    # UTF-8 with or without the BOM spreadsheets write (else glued to the first column's name);
    # each row keeps its own line number, so errors past a blank line still name the right one.
    rows = [(line, row) for line, row in read_csv_rows(path, "geotagged photo list")
            if any(field.strip() for field in row)]
    if not rows:
        raise ValueError(f"{path} is empty; expected a header such as 'path,lat,lon' and one row per photo")
    (header_line, header), body = rows[0], rows[1:]
    if not body:
        raise ValueError(f"{path} has a header but no photos")
    at = {role: _column(header, role, path, header_line) for role in COLUMNS}
    paths, coords = [], np.empty((len(body), 2))
    lines = np.array([line for line, _ in body])
    for i, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: expected {len(header)} fields as the header, found {len(row)}")
        paths.append(row[at["path"]].strip())
        for j, role in enumerate(("lat", "lon")):
            try:
                coords[i, j] = float(row[at[role]])
            except ValueError:
                raise ValueError(f"{path}, line {line}: {role} {row[at[role]]!r} is not a number") from None
    lat, lon = coords[:, 0], coords[:, 1]
    bad_lat, bad_lon = invalid_coordinates(lat, lon)
    if bad_lat.any() and not np.isnan(lat[bad_lat]).any() and (np.abs(lon) <= 90).all():
        raise ValueError(f"{path}: {int(bad_lat.sum())} latitude(s) lie outside [-90, 90] (first on line "
                         f"{lines[np.flatnonzero(bad_lat)[0]]}: {lat[bad_lat][0]}) while every longitude would be a valid "
                         f"latitude: the lat and lon columns look swapped; check the header's order")
    for role, bad, values in (("latitude", bad_lat, lat), ("longitude", bad_lon, lon)):
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            bound = 90 if role == "latitude" else 180
            raise ValueError(f"{path}, line {lines[first]}: {role} {values[first]} is not a number in [-{bound}, {bound}] "
                             f"({int(bad.sum())} such row(s))")
    return GeotaggedPhotos(paths, lat, lon, str(path))

