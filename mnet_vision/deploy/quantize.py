"""INT8 post-training quantization of an exported ``.onnx`` file with ONNX Runtime's static QDQ
quantizer, torch-free.

    >>> from mnet_vision.deploy.quantize import quantize_int8
    >>> quantize_int8("model.onnx", "model.int8.onnx", sorted(Path("calib").glob("*.jpg")))

What it does, and why:

- **QDQ format, per-channel weights.** ``QuantFormat.QDQ`` is what ORT's CPU kernels are optimised
  for; per-channel weight scales are what depthwise-separable nets need (per-tensor INT8 on
  MobileNet V1 drops ImageNet top-1 from 67.6 to 55.5: a depthwise layer's channels differ by orders
  of magnitude). Activations ``QUInt8``, weights ``QInt8`` (U8S8), MinMax calibration.
- **VNNI.** ORT's guidance (``quantize_static``'s docstring, "Choosing parameters for CPU
  inference"): on x86-64 without VNNI use U8S8 with ``reduce_range=True`` (7-bit weights: the AVX2 /
  AVX-512 ``vpmaddubsw`` path sums pairs of u8 x s8 products into int16 and can saturate); with VNNI
  (``vpdpbusd`` accumulates into int32) ``reduce_range=False``. The alternative it names for a
  saturation problem, U8U8, is ``weight_type="QUInt8"``. :func:`cpu_has_vnni` reads the flags.
- **Shape inference first** (``quant_pre_process``, ONNX's shape inference and ORT's optimisation):
  a tensor of unknown shape cannot be quantized.
- **Detectors: the network only.** An SSD export's graph ends at ``bbox_regression`` and
  ``cls_logits``; anchor decoding and NMS run in numpy in fp32 (:mod:`mnet_vision.deploy.postprocess`).
  With ``nms_in_graph``, every node the raw outputs do not depend on (the decoding and
  ``NonMaxSuppression``) is excluded from quantization, so post-processing stays fp32 there too.
- **Calibration** reads the images with :func:`mnet_vision.images.read_rgb` and preprocesses them with
  the file's own ``mnet_vision.preprocess`` settings (:func:`mnet_vision.deploy.preprocess.model_input`):
  an unreadable image is a logged, counted skip; fewer readable images than ``min_images`` is a
  :class:`CalibrationError` naming the minimum and the count.
- **Nothing half-done.** The INT8 file carries every metadata entry of the fp32 file plus
  ``mnet_vision.quantization`` (settings, calibration counts, the rough speed comparison, the gate's
  result) and is written atomically, only after ``gate`` (when given) accepted it.
"""
from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from mnet_vision.atomic import atomic_write
from mnet_vision.deploy.metadata import QUANTIZATION_KEY, TASK_OUTPUTS, ExportedModel, read_exported, set_metadata
from mnet_vision.deploy.preprocess import model_input
from mnet_vision.images import ImageReadError, read_rgb

log = logging.getLogger(__name__)

#: Fewer readable calibration images than this is an error: MinMax ranges from a handful of
#: images miss the tails the held-out data has.
MIN_CALIBRATION_IMAGES = 16
QUANT_TYPES = {"QUInt8": QuantType.QUInt8, "QInt8": QuantType.QInt8}
CALIBRATE_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                     "percentile": CalibrationMethod.Percentile}
#: The speedup below which INT8 is not called faster than fp32 by :func:`compare_speed`.
FASTER_MARGIN = 1.05
#: The /proc/cpuinfo flags of the int8 dot-product instructions (AVX512-VNNI, AVX-VNNI).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


class CalibrationError(ValueError):
    """The calibration images cannot calibrate the model (too few readable, none given)."""


def cpu_has_vnni(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU has an int8 VNNI dot-product instruction (``avx512_vnni`` or ``avx_vnni``
    among the ``flags`` of ``cpuinfo``); False where the file is missing (not Linux, or not x86)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return any(flag in flags for flag in VNNI_FLAGS)


@dataclass(frozen=True)
class QuantizationSettings:
    """What :func:`quantize_int8` quantizes with (stored in the INT8 file's metadata)."""

    per_channel: bool = True
    reduce_range: bool = False
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "minmax"
    vnni: bool = True

    def __post_init__(self):
        for name in ("activation_type", "weight_type"):
            if getattr(self, name) not in QUANT_TYPES:
                raise ValueError(f"{name} must be one of {list(QUANT_TYPES)}, got {getattr(self, name)!r}")
        if self.calibrate_method not in CALIBRATE_METHODS:
            raise ValueError(f"calibrate_method must be one of {list(CALIBRATE_METHODS)}, "
                             f"got {self.calibrate_method!r}")


def recommended_settings(vnni: bool | None = None, reduce_range: bool | None = None, per_channel: bool = True,
                         activation_type: str = "QUInt8", weight_type: str = "QInt8",
                         calibrate_method: str = "minmax") -> QuantizationSettings:
    """ORT's CPU recommendation for this CPU (``vnni`` None: :func:`cpu_has_vnni`): U8S8 with
    ``reduce_range`` True exactly when the CPU has no VNNI and the weights are signed (U8U8 does not
    saturate, so it keeps its 8 bits); an explicit ``reduce_range`` wins."""
    vnni = cpu_has_vnni() if vnni is None else bool(vnni)
    if reduce_range is None:
        reduce_range = not vnni and weight_type == "QInt8"
    return QuantizationSettings(per_channel, bool(reduce_range), activation_type, weight_type, calibrate_method, vnni)


def calibration_batches(exported: ExportedModel, images: Sequence[str | Path], batch_size: int = 8,
                        min_images: int = MIN_CALIBRATION_IMAGES) -> tuple[list[np.ndarray], list[str]]:
    """The readable ``images`` preprocessed for ``exported`` as float32 ``(n, 3, S, S)`` batches of up
    to ``batch_size``, and the paths skipped as unreadable (each logged). Fewer than ``min_images``
    readable is a :class:`CalibrationError` naming the minimum and how many were readable."""
    if not exported.preprocess:
        raise CalibrationError(f"{exported.path} has no mnet_vision.preprocess metadata: its calibration images "
                               "cannot be preprocessed (export it with tools/export.py)")
    readable, skipped = [], []
    for path in images:
        try:
            readable.append(read_rgb(path))
        except ImageReadError as err:
            log.warning("calibration: skipping %s", err)
            skipped.append(str(path))
    if skipped:
        log.warning("calibration: skipped %d unreadable image(s) of %d: %s", len(skipped), len(images), skipped[:5])
    if len(readable) < min_images:
        raise CalibrationError(f"INT8 calibration needs at least {min_images} readable images; got {len(readable)} "
                               f"readable of {len(images)} given ({len(skipped)} unreadable)")
    batches = [model_input(readable[i:i + batch_size], exported.preprocess)
               for i in range(0, len(readable), batch_size)]
    return batches, skipped


class _BatchReader(CalibrationDataReader):
    """ORT's calibration reader over preprocessed batches: ``{input name: (n, 3, S, S)}`` each."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]):
        self.input_name, self.batches = input_name, list(batches)
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._iter = iter(self.batches)


def session(path: str | Path, threads: int = 2) -> ort.InferenceSession:
    """An ORT CPU session with the project's options (``threads`` intra-op, one inter-op thread)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_speed(fp32: str | Path, int8: str | Path, batch: np.ndarray, input_name: str = "images",
                  threads: int = 2, rounds: int = 3) -> dict[str, Any]:
    """A rough speed comparison (not a benchmark: see ``tools/benchmark.py name=deploy``): the median
    of ``rounds`` interleaved runs of each session on ``batch`` after one warm-up run each.
    ``{"batch", "threads", "fp32_ms", "int8_ms", "speedup" (fp32 / int8), "int8_faster"}``; faster
    means a speedup of at least :data:`FASTER_MARGIN` (a few runs on a shared CPU vary by a few %)."""
    sessions = {"fp32": session(fp32, threads), "int8": session(int8, threads)}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for s in sessions.values():
        s.run(None, {input_name: batch})
    for _ in range(max(1, rounds)):
        for name, s in sessions.items():
            start = time.perf_counter()
            s.run(None, {input_name: batch})
            times[name].append(time.perf_counter() - start)
    fp32_ms, int8_ms = (1000 * float(np.median(times[n])) for n in ("fp32", "int8"))
    return {"batch": int(batch.shape[0]), "threads": threads, "fp32_ms": round(fp32_ms, 3),
            "int8_ms": round(int8_ms, 3), "speedup": round(fp32_ms / int8_ms, 3),
            "int8_faster": fp32_ms / int8_ms >= FASTER_MARGIN}


def postprocess_nodes(model: onnx.ModelProto, network_outputs: Sequence[str]) -> list[str]:
    """The names of the nodes ``network_outputs`` do not depend on (a detector's in-graph decoding
    and NMS); unnamed nodes are given names first (the quantizer excludes nodes by name)."""
    producers = {}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
        for out in node.output:
            producers[out] = node
    needed, stack = set(), [producers[name] for name in network_outputs if name in producers]
    while stack:
        node = stack.pop()
        if node.name in needed:
            continue
        needed.add(node.name)
        stack.extend(producers[name] for name in node.input if name in producers)
    return [node.name for node in model.graph.node if node.name not in needed]


def quantize_int8(fp32_path: str | Path, out: str | Path, calibration: Sequence[str | Path],
                  per_channel: bool = True, reduce_range: bool | None = None, activation_type: str = "QUInt8",
                  weight_type: str = "QInt8", calibrate_method: str = "minmax", vnni: bool | None = None,
                  min_images: int = MIN_CALIBRATION_IMAGES, batch_size: int = 8, threads: int = 2,
                  speed_rounds: int = 3, gate: Callable[[Path], dict[str, Any]] | None = None) -> Path:
    """Write ``out``: the static QDQ INT8 quantization of exported model ``fp32_path``, calibrated
    on the ``calibration`` image files (module doc); returns ``out``.

    ``reduce_range`` None: ORT's recommendation for this CPU (:func:`recommended_settings`; ``vnni``
    None reads /proc/cpuinfo, a bool stands for the CPU). ``speed_rounds`` > 0 times both models on
    the first calibration batch (``threads`` intra-op threads) and logs whether INT8 is faster;
    0 skips it. ``gate(int8_path) -> dict``: called on the quantized model before ``out`` is
    written; it raises to refuse it (nothing is written), and its dict is stored as the metadata's
    ``gate``.
    """
    fp32_path, out = Path(fp32_path), Path(out)
    exported = read_exported(fp32_path)
    if exported.quantization:
        raise ValueError(f"{fp32_path} is already quantized ({exported.quantization.get('mode')}): "
                         "give the fp32 export")
    settings = recommended_settings(vnni, reduce_range, per_channel, activation_type, weight_type, calibrate_method)
    batches, skipped = calibration_batches(exported, calibration, batch_size, min_images)
    with tempfile.TemporaryDirectory(prefix="mnet_quantize_") as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        # ONNX's shape inference and ORT's graph optimisation; the symbolic one (made for transformers)
        # fails on an embedding's L2 normalisation (Expand of an unknown shape) and adds nothing to a CNN
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        excluded = []
        if exported.task == "DetectionTask":
            excluded = postprocess_nodes(model, TASK_OUTPUTS["DetectionTask"])
            onnx.save(model, str(prepared))  # the names postprocess_nodes gave
        log.info("quantizing %s: %s%s", fp32_path, settings,
                 f", {len(excluded)} post-processing nodes kept in fp32" if excluded else "")
        quantize_static(str(prepared), str(quantized), _BatchReader(exported.input_name, batches),
                        quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
                        reduce_range=settings.reduce_range, activation_type=QUANT_TYPES[settings.activation_type],
                        weight_type=QUANT_TYPES[settings.weight_type], nodes_to_exclude=excluded or None,
                        calibrate_method=CALIBRATE_METHODS[settings.calibrate_method])
        info: dict[str, Any] = {"mode": "int8", "format": "QDQ", **asdict(settings),
                                "calibration_images": sum(len(b) for b in batches),
                                "calibration_skipped": len(skipped), "fp32_nodes": len(excluded),
                                "fp32_bytes": fp32_path.stat().st_size}
        if speed_rounds > 0:
            info["speed"] = compare_speed(fp32_path, quantized, batches[0], exported.input_name, threads, speed_rounds)
            speed = info["speed"]
            log.warning("INT8 is %s than fp32 on this CPU (%.1f ms vs %.1f ms, batch %d, %d threads%s)",
                        "faster" if speed["int8_faster"] else "NOT clearly faster", speed["int8_ms"], speed["fp32_ms"],
                        speed["batch"], speed["threads"], "" if settings.vnni else ", no VNNI")
        if gate is not None:
            info["gate"] = gate(quantized)  # raises to refuse: nothing written
        model = onnx.load(str(quantized))
        source = onnx.load(str(fp32_path), load_external_data=False)
        # quant_pre_process and quantize_static write their own props: the fp32 file's entries are put back
        props = {p.key: p.value for p in model.metadata_props} | {p.key: p.value for p in source.metadata_props}
        del model.metadata_props[:]
        for key, value in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        set_metadata(model, {QUANTIZATION_KEY: info})
        atomic_write(out, lambda tmp: onnx.save(model, str(tmp)))
    return out
