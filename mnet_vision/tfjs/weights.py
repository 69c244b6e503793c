"""Reading a TF.js weights manifest and its shards into numpy arrays, value for value as
tfjs-core 4.22.0 decodes them (``tf.io.weightsLoaderFactory`` / ``tf.io.decodeWeights`` in
``io/weights_loader.js`` and ``io/io_utils.js``).

The manifest (``*-weights_manifest.json``, or the ``weightsManifest`` of a ``model.json``) is a JSON
list of groups ``{"paths": [shard, ...], "weights": [entry, ...]}``. A group's shards, read in order
and concatenated, hold its tensors back to back in entry order; an entry is ``{"name", "shape",
"dtype", "quantization"?}`` and takes ``prod(shape)`` values of its stored type:

- unquantized ``float32`` / ``int32`` (4 bytes, little-endian) and ``bool`` (1 byte, 0 or 1);
- ``{"dtype": "uint8" | "uint16", "scale", "min"}``: a ``float32`` value is ``v * scale + min``
  computed in float64 and rounded to the nearest float32 (JS stores a double into a Float32Array
  that way); an ``int32`` value is ``Math.round(v * scale + min)``, which rounds ties towards
  +infinity (``-2.5 -> -2``), not to even as ``numpy.rint`` does;
- ``{"dtype": "float16"}`` (``float32`` tensors only): IEEE half precision, decoded by tfjs's own
  table method (``getFloat16Decoder``), ported here bit for bit, subnormals, infinities and NaN
  payloads included.

Shard paths are relative to the manifest's folder. numpy only, so a deployment without torch can
read weights too.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from mnet_vision.textfiles import read_text

# Bytes per stored value (tfjs-core's DTYPE_VALUE_SIZE_MAP, for the types read here).
DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1}
QUANTIZED_BYTES = {"uint8": 1, "uint16": 2, "float16": 2}
NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class TFJSWeightsError(ValueError):
    """A TF.js weights manifest or shard that cannot be read as tfjs reads it; the message names
    the manifest, the group, shard or tensor, and what was expected."""


@dataclass(frozen=True)
class WeightSpec:
    """One entry of a manifest: a tensor ``name`` of ``shape`` and ``dtype`` (``float32``,
    ``int32`` or ``bool``), stored quantized when ``quantization`` is given (``{"dtype": "uint8" |
    "uint16", "scale": float, "min": float}`` or ``{"dtype": "float16"}``), in the shards of group
    number ``shard_group``."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: dict | None
    shard_group: int

    @property
    def size(self) -> int:
        """Number of values, ``prod(shape)`` (1 for a scalar)."""
        return math.prod(self.shape)

    @property
    def stored_dtype(self) -> str:
        """The type of a value in the shard: the quantization dtype, else ``dtype``."""
        return self.quantization["dtype"] if self.quantization is not None else self.dtype

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes in its group's shards."""
        return self.size * (QUANTIZED_BYTES if self.quantization is not None else DTYPE_BYTES)[self.stored_dtype]


@dataclass(frozen=True)
class ManifestGroup:
    """One group of a manifest: its shard files (``paths`` as the manifest writes them, ``files``
    the checked paths inside the manifest's folder) and its tensors in stored order."""

    index: int
    paths: tuple[str, ...]
    files: tuple[Path, ...]
    weights: tuple[WeightSpec, ...]

    @property
    def nbytes(self) -> int:
        """Bytes the group's tensors take, which its shards together must hold exactly."""
        return sum(w.nbytes for w in self.weights)


def read_manifest(path: str | Path) -> list[ManifestGroup]:
    """The checked groups of the weights manifest at ``path`` (a ``*-weights_manifest.json``, or a
    ``model.json`` whose ``weightsManifest`` is one). Checks the JSON, every entry (name, shape,
    dtype, quantization), that no name repeats, and that every shard path stays inside the
    manifest's folder; it does not open the shards (:func:`read_weights` does). A missing manifest
    raises ``FileNotFoundError``; anything wrong in it, :class:`TFJSWeightsError`."""
    path = Path(path)
    try:
        text = read_text(path, "TF.js weights manifest")
    except ValueError as err:  # not UTF-8: the message already names the file, line and column
        raise TFJSWeightsError(str(err)) from None
    data = _parse_json(path, text)
    if isinstance(data, dict) and "weightsManifest" in data:
        data = data["weightsManifest"]
        where = f"{path}: weightsManifest"
    else:
        where = str(path)
    if not isinstance(data, list):
        raise TFJSWeightsError(f"{where}: expected a JSON list of weight groups ({{'paths': [...], 'weights': "
                               f"[...]}}), or a model.json object with 'weightsManifest'; got {_kind(data)}")
    groups, seen = [], {}
    for g, group in enumerate(data):
        groups.append(_check_group(path, where, g, group, seen))
    return groups


def read_weights(manifest: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the weights manifest ``manifest``, decoded as tfjs-core 4.22.0 decodes it:
    ``name -> array`` of the entry's shape, in manifest order; ``float32`` tensors as
    ``np.float32``, ``int32`` as ``np.int32``, ``bool`` as ``np.bool_``. Each group's shards must
    exist and hold exactly the bytes its tensors take (tfjs ignores extra bytes; here a longer
    shard is an error, since it means the manifest and the shards are not from one export).
    Raises :class:`TFJSWeightsError` naming the manifest, group, shard and tensor."""
    manifest = Path(manifest)
    weights: dict[str, np.ndarray] = {}
    for group in read_manifest(manifest):
        data = _read_group(manifest, group)
        offset = 0
        for spec in group.weights:
            weights[spec.name] = _decode(manifest, spec, data[offset:offset + spec.nbytes])
            offset += spec.nbytes
    return weights


def _parse_json(path: Path, text: str) -> Any:
    def refuse_constant(token: str) -> None:
        # Python's json reads NaN and Infinity; JSON (and tfjs's JSON.parse) does not.
        raise TFJSWeightsError(f"{path}: {token} is not JSON (a TF.js manifest holds finite numbers only)")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as err:
        raise TFJSWeightsError(f"{path}: not a JSON weights manifest: {err.msg} at line {err.lineno} column "
                               f"{err.colno}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"the number {value!r}" if isinstance(value, int | float) else type(value).__name__)


def _check_group(path: Path, where: str, g: int, group: Any, seen: dict[str, str]) -> ManifestGroup:
    here = f"{where}, group {g}"
    if not isinstance(group, dict):
        raise TFJSWeightsError(f"{here}: expected an object with 'paths' and 'weights', got {_kind(group)}")
    for field in ("paths", "weights"):
        if field not in group:
            raise TFJSWeightsError(f"{here}: missing field '{field}' (a group is {{'paths': [...], 'weights': [...]}})")
        if not isinstance(group[field], list):
            raise TFJSWeightsError(f"{here}: '{field}' must be a list, got {_kind(group[field])}")
    paths = group["paths"]
    files = tuple(_shard_file(path, f"{here}, paths[{i}]", p) for i, p in enumerate(paths))
    weights = []
    for i, entry in enumerate(group["weights"]):
        spec = _check_entry(f"{here}, weight {i}", g, entry)
        if spec.name in seen:
            raise TFJSWeightsError(f"{here}, weight {i}: tensor name {spec.name!r} repeats {seen[spec.name]} "
                                   "(tfjs would keep only the last; every name must be unique)")
        seen[spec.name] = f"group {g}, weight {i}"
        weights.append(spec)
    return ManifestGroup(index=g, paths=tuple(paths), files=files, weights=tuple(weights))


def _shard_file(manifest: Path, here: str, shard: Any) -> Path:
    if not isinstance(shard, str) or not shard:
        raise TFJSWeightsError(f"{here}: a shard path must be a non-empty string, got {_kind(shard)}")
    if PurePosixPath(shard).is_absolute() or PureWindowsPath(shard).is_absolute() or PureWindowsPath(shard).drive:
        raise TFJSWeightsError(f"{here}: shard path {shard!r} is absolute; shard paths are relative to the "
                               f"manifest's folder {manifest.parent}")
    folder = manifest.parent.resolve()
    file = (folder / shard).resolve()  # resolves symlinks too: a link out of the folder is refused as well
    if not file.is_relative_to(folder):
        raise TFJSWeightsError(f"{here}: shard path {shard!r} leads outside the manifest's folder {folder} "
                               f"(to {file}); shards are read only from inside it")
    return file


def _check_entry(here: str, g: int, entry: Any) -> WeightSpec:
    if not isinstance(entry, dict):
        raise TFJSWeightsError(f"{here}: expected an object with 'name', 'shape' and 'dtype', got {_kind(entry)}")
    for field in ("name", "shape", "dtype"):
        if field not in entry:
            raise TFJSWeightsError(f"{here}: missing field '{field}' (an entry is {{'name', 'shape', 'dtype', "
                                   "'quantization'?}})")
    name, shape, dtype = entry["name"], entry["shape"], entry["dtype"]
    if not isinstance(name, str) or not name:
        raise TFJSWeightsError(f"{here}: 'name' must be a non-empty string, got {_kind(name)}")
    here = f"{here} ({name!r})"
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise TFJSWeightsError(f"{here}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if dtype == "string":
        raise TFJSWeightsError(f"{here}: string tensors are unsupported (their lengths are stored in the "
                               "shard, and no model read here has one)")
    if dtype not in DTYPE_BYTES:
        raise TFJSWeightsError(f"{here}: unsupported dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}")
    quantization = None
    if "quantization" in entry:
        quantization = _check_quantization(here, dtype, entry["quantization"])
    return WeightSpec(name=name, shape=tuple(shape), dtype=dtype, quantization=quantization, shard_group=g)


def _check_quantization(here: str, dtype: str, q: Any) -> dict:
    if not isinstance(q, dict) or "dtype" not in q:
        raise TFJSWeightsError(f"{here}: 'quantization' must be an object with a 'dtype', got {q!r}")
    qtype = q["dtype"]
    if qtype not in QUANTIZED_BYTES:
        raise TFJSWeightsError(f"{here}: unknown quantization dtype {qtype!r}; expected one of "
                               f"{sorted(QUANTIZED_BYTES)}")
    if qtype == "float16":
        if dtype != "float32":
            raise TFJSWeightsError(f"{here}: float16 quantization is for float32 tensors only, not {dtype}")
        return {"dtype": qtype}
    if dtype not in ("float32", "int32"):
        raise TFJSWeightsError(f"{here}: {qtype} quantization is for float32 and int32 tensors only, not {dtype}")
    for field in ("scale", "min"):
        if field not in q:
            raise TFJSWeightsError(f"{here}: {qtype} quantization needs 'scale' and 'min'; '{field}' is missing")
        value = q[field]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TFJSWeightsError(f"{here}: quantization '{field}' must be a finite number, got {value!r}")
    # float() of a JSON integer rounds as JS reading the same literal does (to the nearest double).
    return {"dtype": qtype, "scale": float(q["scale"]), "min": float(q["min"])}


def _read_group(manifest: Path, group: ManifestGroup) -> bytes:
    """The group's shards concatenated, checked to hold exactly the bytes its tensors take."""
    parts = []
    for shard, file in zip(group.paths, group.files, strict=True):
        try:
            parts.append(file.read_bytes())
        except FileNotFoundError:
            raise TFJSWeightsError(f"{manifest}: shard {shard!r} of group {group.index} does not exist "
                                   f"(looked for {file})") from None
        except IsADirectoryError:
            raise TFJSWeightsError(f"{manifest}: shard {shard!r} of group {group.index} is a folder, "
                                   f"not a file ({file})") from None
    data = b"".join(parts)
    present, needed = len(data), group.nbytes
    shards = ", ".join(f"{p} ({len(b)} bytes)" for p, b in zip(group.paths, parts, strict=True)) or "no shards"
    if present < needed:
        offset = 0
        for spec in group.weights:
            if offset + spec.nbytes > present:
                break
            offset += spec.nbytes
        raise TFJSWeightsError(
            f"{manifest}: group {group.index}'s shards hold {present} bytes but its tensors need {needed} "
            f"[{shards}]: tensor {spec.name!r} (bytes {offset}..{offset + spec.nbytes}) does not fit; the "
            "shards are truncated or from another export")
    if present > needed:
        raise TFJSWeightsError(
            f"{manifest}: group {group.index}'s shards hold {present} bytes, {present - needed} more than its "
            f"tensors need ({needed}) [{shards}]; tfjs ignores the rest, but a longer shard means the manifest "
            "and the weights are not from the same export")
    return data


def _decode(manifest: Path, spec: WeightSpec, raw: bytes) -> np.ndarray:
    """The values of one tensor from its ``spec.nbytes`` stored bytes, shaped ``spec.shape``."""
    here = f"{manifest}: tensor {spec.name!r} (group {spec.shard_group})"
    q = spec.quantization
    if q is None:
        if spec.dtype == "bool":
            stored = np.frombuffer(raw, dtype=np.uint8)
            if stored.size and stored.max() > 1:
                bad = int(np.flatnonzero(stored > 1)[0])
                raise TFJSWeightsError(f"{here}: bool value {bad} is byte {int(stored[bad])}; expected 0 or 1")
            values = stored.astype(np.bool_)
        else:
            values = np.frombuffer(raw, dtype=np.dtype(NUMPY_DTYPES[spec.dtype]).newbyteorder("<"))
            values = values.astype(NUMPY_DTYPES[spec.dtype])  # native order, and a writable copy
    elif q["dtype"] == "float16":
        values = _float16_to_float32(np.frombuffer(raw, dtype="<u2"))
    else:
        stored = np.frombuffer(raw, dtype="<u1" if q["dtype"] == "uint8" else "<u2")
        real = stored.astype(np.float64) * q["scale"] + q["min"]  # JS: double multiply, then double add
        if spec.dtype == "float32":
            with np.errstate(over="ignore"):
                values = real.astype(np.float32)  # nearest float32, as a Float32Array store rounds
            if not np.isfinite(values).all():
                raise TFJSWeightsError(f"{here}: v * scale + min overflows float32 (scale {q['scale']}, "
                                       f"min {q['min']}); the quantization is corrupt")
        else:
            rounded = _js_round(real)
            if rounded.size and (rounded.min() < _INT32_MIN or rounded.max() > _INT32_MAX):
                raise TFJSWeightsError(f"{here}: Math.round(v * scale + min) leaves the int32 range (scale "
                                       f"{q['scale']}, min {q['min']}); tfjs would wrap it, here it is refused")
            values = rounded.astype(np.int32)
    return values.reshape(spec.shape)


def _js_round(x: np.ndarray) -> np.ndarray:
    """JavaScript's ``Math.round`` on float64: the nearest integer, ties towards +infinity.
    ``floor(x + 0.5)`` is not it: for ``x = 0.49999999999999994`` the sum rounds up to 1.0."""
    floor = np.floor(x)
    return floor + (x - floor >= 0.5)  # x - floor(x) is exact in float64


@functools.cache
def _float16_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tfjs-core's mantissa (2048), exponent (64) and offset (64) tables for half -> float32
    (``computeFloat16MantisaTable`` and its siblings in io_utils.js, after van der Zijp's
    "Fast Half Float Conversions")."""
    def convert_mantissa(i: int) -> int:  # a subnormal half's mantissa, normalised
        m, e = i << 13, 0
        while not m & 0x00800000:
            e -= 0x00800000
            m <<= 1
        return (m & ~0x00800000) | (e + 0x38800000)

    mantissa = np.zeros(2048, dtype=np.uint32)
    mantissa[1:1024] = [convert_mantissa(i) for i in range(1, 1024)]
    mantissa[1024:] = 0x38000000 + (np.arange(1024, dtype=np.uint32) << 13)
    exponent = np.zeros(64, dtype=np.uint32)
    exponent[1:31] = np.arange(1, 31, dtype=np.uint32) << 23
    exponent[31], exponent[32], exponent[63] = 0x47800000, 0x80000000, 0xC7800000
    exponent[33:63] = 0x80000000 + (np.arange(1, 31, dtype=np.uint32) << 23)
    offset = np.full(64, 1024, dtype=np.uint32)
    offset[0] = offset[32] = 0
    return mantissa, exponent, offset


def _float16_to_float32(halves: np.ndarray) -> np.ndarray:
    """float32 values of IEEE half bit patterns (``uint16``), bit for bit as tfjs's
    ``getFloat16Decoder`` gives them."""
    mantissa, exponent, offset = _float16_tables()
    top = halves >> 10  # sign and exponent
    bits = mantissa[offset[top] + (halves & 0x3FF)] + exponent[top]  # never above 0xFFFFE000: no uint32 overflow
    return bits.astype(np.uint32).view(np.float32)
