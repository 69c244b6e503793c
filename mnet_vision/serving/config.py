"""What the service serves and how: :class:`ServiceConfig` (``tools/serve.py``'s keys, conf/serve.yaml),
checked when made, and :func:`check_bind`, the refusal to listen beyond this machine with writes open to
anyone."""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1 << 20
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServiceConfig:
    """The service's models, index, security and limits.

    Models (each ``None``: not served, its endpoint answers 503 naming the key):
        detector: ``POST /detect``'s model: a detection checkpoint, its ``.onnx`` export, or a pretrained
            name (:data:`mnet_vision.pretrained.models.PRETRAINED`, e.g. ``faceapi_ssd``).
        embedder: ``POST /embed``'s embedding checkpoint or ``.onnx``.
        geolocator: ``POST /geolocate``'s geolocation checkpoint or ``.onnx``.
        faces: serve ``/faces/*`` with :class:`mnet_vision.faces.pipeline.FacePipeline` (face-api's
            detector, landmarks and descriptor); ``pipeline``: its keyword arguments (conf/faces.yaml's
            ``pipeline:`` keys: other nets, ``.onnx`` files, ``align`` ...).
        index: the face index file searched and added to (created at the first add when missing;
            :class:`mnet_vision.index.face_index.FaceIndex`), ``None``: an index in memory, empty at start.

    Security: ``writable`` opens ``POST /faces/add``; ``token``: when set, writes need
    ``Authorization: Bearer <token>``; ``host`` / ``port``: where uvicorn listens (:func:`check_bind`);
    ``cors_origins``: the origins a browser may call from (none: no CORS headers at all).

    Limits: ``max_upload_bytes`` (an upload's body, 413 beyond), ``max_pixels`` (an image's pixels from its
    header, 413 beyond, nothing decoded).

    Batching: requests arriving together are run as one batch of up to ``batch_max_size`` images, the first
    waiting at most ``batch_max_wait_ms`` for others (:class:`mnet_vision.serving.batcher.MicroBatcher`).

    Defaults of the requests: ``score`` (detection threshold), ``top_k`` (geolocation cells), ``k``
    (matches per face), ``threshold`` (a face farther than it is unknown: face-api's Euclidean 0.6; for a
    cosine describer a similarity). ``threads``: torch's intra-op threads (None: leave torch's);
    ``device``, ``fast``: as the tools'.
    """

    detector: str | None = None
    embedder: str | None = None
    geolocator: str | None = None
    faces: bool = False
    pipeline: Mapping[str, Any] = field(default_factory=dict)
    index: str | None = None
    writable: bool = True
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 16 * MIB
    max_pixels: int = 40_000_000
    batch_max_size: int = 8
    batch_max_wait_ms: float = 5.0
    cors_origins: tuple[str, ...] = ()
    score: float = 0.3
    top_k: int = 5
    k: int = 5
    threshold: float | None = 0.6
    threads: int | None = None
    device: str = "cpu"
    fast: bool = True

    def __post_init__(self) -> None:
        for key in ("detector", "embedder", "geolocator", "index"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, (str, Path)) or not str(value)):
                raise ValueError(f"{key}={value!r}: expected a non-empty string (a path or a name), or null")
            if isinstance(value, Path):
                object.__setattr__(self, key, str(value))
        for key in ("faces", "writable", "fast"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key}={getattr(self, key)!r}: expected true or false")
        _whole(self, "port", 1, 65535)
        _whole(self, "max_upload_bytes", 1)
        _whole(self, "max_pixels", 1)
        _whole(self, "batch_max_size", 1)
        _whole(self, "top_k", 1)
        _whole(self, "k", 1)
        if self.threads is not None:
            _whole(self, "threads", 1)
        if not _number(self.batch_max_wait_ms) or self.batch_max_wait_ms < 0:
            raise ValueError(f"batch_max_wait_ms={self.batch_max_wait_ms!r}: expected milliseconds >= 0")
        if not _number(self.score) or not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score={self.score!r}: expected a detection score threshold in [0, 1]")
        if self.threshold is not None and not _number(self.threshold):
            raise ValueError(f"threshold={self.threshold!r}: expected a number (a distance or a similarity) or null")
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host={self.host!r}: expected an address to listen on, e.g. 127.0.0.1")
        if isinstance(self.cors_origins, str):  # one origin given bare, not a list of its characters
            object.__setattr__(self, "cors_origins", (self.cors_origins,))
        origins = tuple(self.cors_origins)
        if not all(isinstance(o, str) and o for o in origins):
            raise ValueError(f"cors_origins={self.cors_origins!r}: expected a list of origins such as "
                             f"https://app.example.org (or * for any)")
        object.__setattr__(self, "cors_origins", origins)
        if not isinstance(self.pipeline, Mapping):
            raise ValueError(f"pipeline={self.pipeline!r}: expected FacePipeline's keyword arguments as a mapping")
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            raise ValueError(f"token is {'blank' if isinstance(self.token, str) else type(self.token).__name__}: "
                             f"give a secret string (token= or MNET_SERVE_TOKEN), or null for no token")

    @property
    def serves_anything(self) -> bool:
        return bool(self.detector or self.embedder or self.geolocator or self.faces)

    def public(self) -> dict[str, Any]:
        """What ``GET /models`` may tell anyone: the limits, batching and security settings, never the
        token itself (only whether one is needed)."""
        return {"limits": {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels},
                "batching": {"max_size": self.batch_max_size, "max_wait_ms": self.batch_max_wait_ms},
                "writes": {"writable": self.writable, "token_required": self.token is not None},
                "defaults": {"score": self.score, "top_k": self.top_k, "k": self.k, "threshold": self.threshold}}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(config: ServiceConfig, key: str, low: int, high: int | None = None) -> None:
    value = getattr(config, key)
    if not _number(value) or not float(value).is_integer() or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{key}={value!r}: expected a whole number {bound}")
    object.__setattr__(config, key, int(value))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine only (127.0.0.0/8, ::1, ``localhost``)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(config: ServiceConfig) -> None:
    """Refuse (``ValueError`` saying what to set) to listen beyond loopback with writes enabled and no
    token: anyone who can reach the port could then fill or poison the face index."""
    if config.writable and config.token is None and not is_loopback(config.host):
        raise ValueError(f"refusing to listen on host={config.host} with writes enabled (writable=true) and no "
                         f"token: anyone reaching the port could add faces to the index. Set token=<secret> "
                         f"(clients send Authorization: Bearer <secret>), or writable=false, or host=127.0.0.1")
