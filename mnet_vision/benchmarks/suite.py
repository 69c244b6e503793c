"""The benchmarks by name, for ``tools/benchmark.py``: ``run("index", {"sizes": [1000]})``.

A benchmark is one or more parts, each a measuring function and the report that prints its rows.
The measuring functions' keyword defaults are the only defaults: an override goes to every part
whose function takes that keyword, and one that no part takes is an error naming the keys there are.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mnet_vision.benchmarks import (
    attributes,
    classification,
    deploy,
    detection,
    embedding,
    face_detector,
    faces,
    geo,
    index,
    serve,
    shard_index,
)


@dataclass(frozen=True)
class Part:
    """``measure(**kwargs) -> rows``; ``report(rows, args) -> str`` with ``args`` every argument of
    the call, defaults filled in."""

    measure: Callable[..., list[dict]]
    report: Callable[[list[dict], Mapping[str, Any]], str]

    def keys(self) -> dict[str, Any]:
        """The measuring function's keywords and their defaults."""
        return {name: p.default for name, p in inspect.signature(self.measure).parameters.items()}


BENCHMARKS: dict[str, tuple[Part, ...]] = {
    "classification": (Part(classification.compare_with_timm, classification.report),),
    "detection": (Part(detection.compare_detectors, detection.report),
                  Part(face_detector.compare_face_detectors, face_detector.report)),
    "face_detector": (Part(face_detector.compare_face_detectors, face_detector.report),),
    "faces": (Part(faces.compare_face_pipelines, faces.report),),
    "index": (Part(index.compare_indexes, index.report),),
    "embedding": (Part(embedding.compare_embedders, embedding.report),),
    "attributes": (Part(attributes.compare_attribute_models, attributes.report),),
    "geo": (Part(geo.partition_build_rows, geo.partition_report), Part(geo.geolocation_rows, geo.geolocation_report)),
    "deploy": (Part(deploy.compare_deployments, deploy.report),),
    "serve": (Part(serve.compare_service, serve.report),),
    "shard_index": (Part(shard_index.compare_shard_indexes, shard_index.report),),
}
DEFAULT = "classification"


def run(name: str, overrides: Mapping[str, Any] | None = None) -> str:
    """Run benchmark ``name`` with keyword ``overrides`` and return its reports (header lines and
    Markdown tables), parts separated by a blank line."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: one of {', '.join(BENCHMARKS)}")
    parts, overrides = BENCHMARKS[name], dict(overrides or {})
    unknown = set(overrides) - {key for part in parts for key in part.keys()}
    if unknown:
        raise ValueError(f"benchmark {name} takes no {', '.join(sorted(unknown))}; its keys: {describe(name)}")
    reports = []
    for part in parts:
        args = inspect.signature(part.measure).bind(**{k: v for k, v in overrides.items() if k in part.keys()})
        args.apply_defaults()
        reports.append(part.report(part.measure(*args.args, **args.kwargs), args.arguments))
    return "\n\n".join(reports)


def describe(name: str) -> str:
    """``key=default`` for every key benchmark ``name`` takes (per part when it has several)."""
    parts = BENCHMARKS[name]
    return "; ".join((f"{part.measure.__name__}: " if len(parts) > 1 else "")
                     + " ".join(f"{key}={_shown(value)}" for key, value in part.keys().items()) for part in parts)


def _shown(value: Any) -> str:
    """A default as it is written on the command line (YAML: lists in brackets, null)."""
    if value is None:
        return "null"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_shown(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
