"""CPU speed of the deployment paths side by side (issue 16 item 4): PyTorch eager, our folded path,
ONNX Runtime fp32 and INT8 of our export, OpenVINO on both files, and the peers' exports in ONNX Runtime.

Three of our models (the MobileNet V1 1.0-224 classifier, 1000 classes; SSD300 on MobileNet V1 1.0
with 91 class columns, as TF's COCO detector; the 0.25 MobileNet-128 face-embedding student of
``experiment=faces_student``) and two peers (timm's ``mobilenetv1_100``, torchvision's
``ssdlite320_mobilenet_v3_large``). Every model is timed as its network graph: images already
preprocessed, ``(N, 3, S, S)`` float32, in; the graph's outputs out. A detector's anchor decoding and
NMS run outside the exported graph (in numpy), so a detector is timed as ``backbone -> box and class
predictors`` in every runtime, the peer's too. Weights are untrained (random initialisation): speed
does not depend on them; the INT8 models are calibrated on synthetic images.

Every runtime gets the same threads (``torch.set_num_threads``, ORT ``intra_op_num_threads``,
OpenVINO ``INFERENCE_NUM_THREADS``) and the same inputs; the runtimes of one model family (ours and
its peer) at one batch size are timed interleaved, one call each with the order rotating every round
(:func:`mnet_vision.benchmarks.timing.median_seconds`), medians reported.
"""
from __future__ import annotations

import io
import math
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.models.detection import ssdlite320_mobilenet_v3_large

from mnet_vision.benchmarks.timing import median_seconds, number_or_dash, timm_model
from mnet_vision.checkpoints import checkpoint_metadata
from mnet_vision.config import compose
from mnet_vision.data.synthetic.drawing import SHAPES
from mnet_vision.data.synthetic.shapes import draw_shape_image
from mnet_vision.deploy.quantize import VNNI_FLAGS, cpu_has_vnni, quantize_int8
from mnet_vision.deploy.runtime import load_onnx
from mnet_vision.inference.export import export_onnx
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.inference.load import LoadedModel, ModelMeta
from mnet_vision.markdown import markdown_table
from mnet_vision.model import build_model

#: Our benchmarked models: name -> (Hydra overrides, the task's graph outputs).
OURS = {
    "mobilenet_v1": (("task=classification", "data=imagenet", "backbone=mobilenet_v1", "backbone.alpha=1.0",
                      "backbone.activation=relu6", "task.num_classes=1000"), ("logits",)),
    # TF's COCO label map has 90 ids: 91 columns with the background, as torchvision's COCO detectors
    "ssd300": (("task=ssd300", "backbone=mobilenet_v1", "backbone.alpha=1.0", "data.num_classes=90"),
               ("bbox_regression", "cls_logits")),
    "student": (("experiment=faces_student", "task.input_size=128"), ("embedding",)),
}
LABELS = {"mobilenet_v1": "mnet_vision MobileNetV1 1.0 classifier", "ssd300": "mnet_vision SSD300 MobileNetV1 1.0",
          "student": "mnet_vision 0.25 MobileNet embedding student"}
#: The peer of each of our models (same architecture family) and its own input size.
PEERS = {"mobilenet_v1": ("timm mobilenetv1_100", None), "ssd300": ("torchvision ssdlite320_mobilenet_v3_large", 320)}
EAGER, FOLDED, ORT_FP32, ORT_INT8 = ("PyTorch eager", "PyTorch BN folded + channels_last", "ORT fp32",
                                     "ORT INT8 (QDQ, per-channel)")
OPENVINO, OPENVINO_INT8 = "OpenVINO fp32", "OpenVINO INT8 (the QDQ file)"
OPENVINO_MISSING = "not measured: openvino is not installed (pip install openvino)"


class DetectorNetwork(nn.Module):
    """The network part of a torchvision SSD (ours: ``SSD300Head.detector``; the peer's): preprocessed
    ``(N, 3, S, S)`` images -> ``bbox_regression`` (N, A, 4), ``cls_logits`` (N, A, C + 1), as
    torchvision's ``SSD.forward`` computes them before decoding and NMS."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.backbone, self.head = detector.backbone, detector.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)
        features = [features] if isinstance(features, torch.Tensor) else list(features.values())
        outputs = self.head(features)
        return outputs["bbox_regression"], outputs["cls_logits"]


def our_model(name: str, input_size: int | None = None) -> LoadedModel:
    """Our model ``name`` (a key of :data:`OURS`), untrained, in eval mode, as a :class:`LoadedModel`
    (the exporter's input) with the metadata a checkpoint of it would carry; ``input_size``
    overrides the task's (pixels)."""
    overrides, _ = OURS[name]
    cfg = compose([*overrides, *([f"task.input_size={input_size}"] if input_size else [])])
    task = cfg.task.module._target_.rsplit(".", 1)[-1]
    meta = ModelMeta.from_dict(checkpoint_metadata(cfg, task, OURS[name][1][0] if len(OURS[name][1]) == 1 else None),
                               "untrained")
    return LoadedModel(build_model(cfg).eval(), cfg, meta, source=f"untrained {name}")


def network(model: nn.Module) -> nn.Module:
    """What is timed and exported of ``model``: a detector's :class:`DetectorNetwork`, else the model."""
    detector = getattr(getattr(model, "head", None), "detector", None)
    if detector is None and hasattr(model, "anchor_generator"):  # a torchvision detector itself
        detector = model
    return DetectorNetwork(detector).eval() if detector is not None else model


def peer_model(name: str, input_size: int) -> tuple[nn.Module, int]:
    """The peer of our model ``name`` (:data:`PEERS`) in eval mode, untrained, and its input size."""
    if name == "mobilenet_v1":
        return timm_model("mobilenetv1_100", required=True), input_size
    return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval(), PEERS[name][1] or input_size


def export_graph(net: nn.Module, images: torch.Tensor, out: Path, output_names: Sequence[str],
                 dynamo: bool = True, opset: int = 18) -> str:
    """``net`` exported to ``out`` with the ``torch.onnx.export`` calls :func:`export_onnx` makes (one
    ``images`` input with a dynamic ``batch`` dimension, ``output_names``, opset ``opset``, weights
    inside the file; dynamo first when ``dynamo``, TorchScript where it fails): for the peers, which
    have none of our metadata. Returns the exporter used. Their BatchNorm is left to ONNX Runtime's
    Conv+BN fusion (timm's BatchNormAct2d carries its activation, which folding would drop)."""
    if dynamo:
        try:
            with torch.no_grad():
                torch.onnx.export(net, (images,), str(out), dynamo=True, opset_version=opset, input_names=["images"],
                                  output_names=list(output_names), external_data=False,
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))  # by position: timm's is x
            return "dynamo"
        except Exception as error:  # as export_onnx: any dynamo failure falls back to TorchScript, said in the row
            print(f"export of a peer: the dynamo exporter failed ({type(error).__name__}: {str(error)[:200]}); "
                  "TorchScript instead")
    with torch.no_grad():
        torch.onnx.export(net, (images,), str(out), dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=list(output_names), dynamic_axes={"images": {0: "batch"}})
    return "torchscript"


def synthetic_photos(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """``count`` synthetic shape images (``size`` x ``size`` PNGs, :func:`draw_shape_image`) written to
    ``folder``: the INT8 models' calibration images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"shape_{i:03d}.png"
        Image.fromarray(draw_shape_image(SHAPES[i % len(SHAPES)], rng, size)).save(path)
        paths.append(path)
    return paths


def file_mb(path: Path) -> float:
    """Size in MB (10^6 bytes) of a file (every export here holds its weights inside)."""
    return path.stat().st_size / 1e6


def state_dict_mb(model: nn.Module) -> float:
    """Size in MB of ``torch.save(model.state_dict())``: what a PyTorch deployment ships (of the whole
    model: a detector's network module does not register the backbone our SSD head shares)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1e6


def openvino_runner(path: Path, batch: int, size: int, threads: int) -> Callable[[np.ndarray], object] | str:
    """One OpenVINO CPU inference of the ONNX file at ``path`` (fp32, or INT8 QDQ: OpenVINO runs its
    quantized ops in int8), reshaped to a static ``batch`` (as OpenVINO advises) with fp32 precision
    for the float ops (it would pick bf16 on AMX CPUs), ``threads`` threads; or a note saying why it
    cannot run."""
    try:
        import openvino  # lazy: an optional runtime, imported only when its rows are asked for
    except ImportError:
        return OPENVINO_MISSING
    core = openvino.Core()
    model = core.read_model(str(path))
    model.reshape([batch, 3, size, size])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                                                 "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    return lambda x: request.infer([x])


@dataclass
class Runner:
    """One benchmarked (model, runtime): ``call(prepare(x))`` runs the graph on batch ``x``
    (``(N, 3, S, S)`` float32); ``prepare`` (untimed) converts the input to what the runtime takes;
    ``call`` None: not measured, ``note`` says why."""

    model: str
    runtime: str
    size: int
    call: Callable[[Any], object] | None
    prepare: Callable[[torch.Tensor], Any]
    file_mb: float
    note: str = ""
    peer: bool = False


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.numpy()


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _ort_call(path: Path, threads: int, task: str | None = None) -> Callable[[np.ndarray], object]:
    """One ONNX Runtime inference of the file at ``path`` (:func:`load_onnx`; ``task`` for a peer's
    file, which has none of our metadata)."""
    return load_onnx(path, threads, task=task).run


def family_runners(name: str, folder: Path, input_size: int | None, threads: int, calibration_images: int,
                   dynamo: bool) -> tuple[list[Runner], dict[str, Path]]:
    """The runners of our model ``name`` (eager, folded, ORT fp32, ORT INT8) and of its peer (eager,
    ORT fp32), their exports written under ``folder``; and our files OpenVINO runs (``{OPENVINO: fp32
    path, OPENVINO_INT8: INT8 path or None}``, its runners are made per batch size)."""
    loaded = our_model(name, input_size)
    size = int(loaded.meta.input_size)
    label, outputs = LABELS[name], OURS[name][1]
    net = network(loaded.model)
    exported = export_onnx(loaded, folder / name / "fp32.onnx", dynamo=dynamo)
    fp32, wanted = exported.path, "dynamo" if dynamo else "torchscript"
    photos = synthetic_photos(folder / name / "calibration", calibration_images, size)
    try:
        int8 = quantize_int8(fp32, folder / name / "int8.onnx", photos, threads=threads, speed_rounds=0)
        int8_runner = Runner(label, ORT_INT8, size, _ort_call(int8, threads), _numpy, file_mb(int8))
    except Exception as error:  # the quantizer failing on one model is a row saying why, the others still run
        int8_runner = Runner(label, ORT_INT8, size, None, _same, math.nan,
                             f"not measured: quantize_int8 failed: {type(error).__name__}: {str(error)[:200]}")
    folded = prepare_for_inference(loaded.model, channels_last=True)
    runners = [Runner(label, EAGER, size, net, _same, state_dict_mb(loaded.model)),
               Runner(label, FOLDED, size, network(folded), _channels_last, state_dict_mb(folded)),
               Runner(label, ORT_FP32, size, _ort_call(fp32, threads), _numpy, file_mb(fp32),
                      "" if exported.exporter == wanted else f"exported by {exported.exporter}"),
               int8_runner]
    exports = {OPENVINO: fp32, OPENVINO_INT8: None if int8_runner.call is None else int8}
    if name in PEERS:
        peer, peer_size = peer_model(name, size)
        peer_net = network(peer)
        peer_label = PEERS[name][0]
        path = folder / name / "peer.onnx"
        exporter = export_graph(peer_net, torch.randn(2, 3, peer_size, peer_size), path, outputs, dynamo)
        note = "" if exporter == wanted else f"exported by {exporter}"
        runners += [Runner(peer_label, EAGER, peer_size, peer_net, _same, state_dict_mb(peer), peer=True),
                    Runner(peer_label, ORT_FP32, peer_size, _ort_call(path, threads, loaded.meta.task), _numpy,
                           file_mb(path), note, peer=True)]
    return runners, exports


def compare_deployments(models: Sequence[str] = ("mobilenet_v1", "ssd300", "student"),
                        batch_sizes: Sequence[int] = (1, 32), repeats: int = 15, warmup: int = 2, threads: int = 2,
                        input_sizes: Sequence[int] | None = None, calibration_images: int = 32, dynamo: bool = True,
                        openvino: bool = True) -> list[dict]:
    """One row per model, runtime and batch size: the median ms per call of the network graph on a
    batch (``{"family", "model", "runtime", "batch", "median_ms", "images_per_s", "ratio_vs_eager",
    "ratio_vs_peer_ort", "file_mb", "note"}``). ``ratio_vs_eager``: the same model's PyTorch eager
    time / this time; ``ratio_vs_peer_ort``: the family peer's ORT fp32 time / this time (above 1:
    faster; NaN without a peer). ``models``: keys of :data:`OURS`; ``input_sizes``: one per model
    (pixels; None: each model's own, the peers' too); ``calibration_images``: synthetic images the
    INT8 models are calibrated on; ``dynamo``: the exporter; ``openvino``: rows for OpenVINO on our fp32
    and INT8 files (rows saying why when it is not installed)."""
    unknown = [m for m in models if m not in OURS]
    if unknown:
        raise ValueError(f"deploy benchmark: unknown models {unknown}; choose from {list(OURS)}")
    if input_sizes is not None and len(input_sizes) != len(models):
        raise ValueError(f"deploy benchmark: input_sizes has {len(input_sizes)} entries for {len(models)} models")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mnet_deploy_benchmark_") as tmp:
        for k, name in enumerate(models):
            runners, exports = family_runners(name, Path(tmp), input_sizes[k] if input_sizes else None, threads,
                                              calibration_images, dynamo)
            for batch in batch_sizes:
                openvino_rows = [_openvino(runners[0], runtime, path, batch, threads)
                                 for runtime, path in exports.items()] if openvino else []
                batch_runners = runners[:4] + openvino_rows + runners[4:]
                rows += _timed_rows(name, batch, batch_runners, warmup, repeats)
    return rows


def _openvino(ours: Runner, runtime: str, path: Path | None, batch: int, threads: int) -> Runner:
    """OpenVINO's runner of our file ``path`` at ``batch``, or an untimed one saying why there is none."""
    try:
        made = openvino_runner(path, batch, ours.size, threads) if path else "not measured: no INT8 file"
    except Exception as error:  # OpenVINO refusing a graph is a row saying why, the other runtimes still run
        made = f"not measured: OpenVINO failed: {type(error).__name__}: {str(error)[:200]}"
    if isinstance(made, str):
        return Runner(ours.model, runtime, ours.size, None, _same, math.nan, made)
    return Runner(ours.model, runtime, ours.size, made, _numpy, file_mb(path))


def _timed_rows(family: str, batch: int, runners: Sequence[Runner], warmup: int, repeats: int) -> list[dict]:
    """The rows of ``runners`` at ``batch``, timed interleaved (a runner with a note is not timed)."""
    generator = torch.Generator().manual_seed(batch)
    sizes = sorted({r.size for r in runners})
    inputs = {size: torch.randn(batch, 3, size, size, generator=generator) for size in sizes}
    timed = {(r.model, r.runtime): (r.call, r.prepare(inputs[r.size])) for r in runners if r.call is not None}
    with torch.inference_mode():  # the PyTorch runners' grad mode (ORT and OpenVINO do not see it)
        medians = median_seconds(timed, warmup, repeats)
    eager = {r.model: medians[(r.model, r.runtime)] for r in runners if r.runtime == EAGER}
    peer = next((medians[(r.model, r.runtime)] for r in runners if r.peer and r.runtime == ORT_FP32), math.nan)
    rows = []
    for r in runners:
        t = medians.get((r.model, r.runtime), math.nan)
        rows.append({"family": family, "peer": r.peer, "model": r.model, "input": r.size, "runtime": r.runtime,
                     "batch": batch, "median_ms": 1000 * t, "images_per_s": batch / t,
                     "ratio_vs_eager": eager[r.model] / t, "ratio_vs_peer_ort": peer / t,
                     "file_mb": r.file_mb, "note": r.note})
    return rows


def cpu_name() -> str:
    """The CPU's model name as ``lscpu`` gives it (``/proc/cpuinfo`` without lscpu), or ``unknown CPU``."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    found = re.search(r"^(?:Model name|model name)\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else "unknown CPU"


def versions() -> str:
    """The versions of every runtime in the table."""
    try:
        import openvino  # lazy: optional (see openvino_runner)
        ov = f", openvino {openvino.__version__.split('-')[0]}"
    except ImportError:
        ov = ", openvino not installed"
    try:
        import timm  # lazy: the dev extra's peer, slow to import (as in timing.timm_model)
        tm = f", timm {timm.__version__}"
    except ImportError:
        tm = ", timm not installed"
    return (f"torch {torch.__version__}, torchvision {torchvision.__version__}{tm}, onnx {onnx.__version__}, "
            f"onnxruntime {onnxruntime.__version__}{ov}")


def verdict(rows: Sequence[dict], has_vnni: bool) -> list[str]:
    """The issue's goals checked on ``rows``, one line each: our ORT fp32 within 5 % of ORT on the
    peer's export of MobileNet V1 (timm), INT8 >= 1.5x our ORT fp32 at the largest batch on a VNNI
    CPU (and said plainly where INT8 is slower than fp32), INT8 file <= 30 % of fp32."""
    lines = []
    mine = {(r["family"], r["runtime"], r["batch"]): r for r in rows if not r["peer"]}
    peer_ort = {r["batch"]: r for r in rows if r["peer"] and r["family"] == "mobilenet_v1" and r["runtime"] == ORT_FP32}
    if peer_ort:
        parts, met = [], True
        for batch, p in sorted(peer_ort.items()):
            ours = mine[("mobilenet_v1", ORT_FP32, batch)]["median_ms"]
            met &= ours <= 1.05 * p["median_ms"]
            parts.append(f"batch {batch} {ours:.2f} vs {p['median_ms']:.2f} ms ({p['median_ms'] / ours:.2f}x)")
        lines.append(f"MobileNet V1, our ORT fp32 vs ORT on {PEERS['mobilenet_v1'][0]}'s export: {'; '.join(parts)} "
                     f"-> goal (at most 5 % slower) {'met' if met else 'NOT met'}")
    for family in dict.fromkeys(r["family"] for r in rows):
        label = LABELS[family]
        batches = sorted({b for f, rt, b in mine if f == family and rt == ORT_INT8})
        if not batches:
            continue
        if any(math.isnan(mine[(family, ORT_INT8, b)]["median_ms"]) for b in batches):
            lines.append(f"{label}, ORT INT8: {mine[(family, ORT_INT8, batches[0])]['note']}")
            continue
        speed = {b: mine[(family, ORT_FP32, b)]["median_ms"] / mine[(family, ORT_INT8, b)]["median_ms"]
                 for b in batches}
        top = batches[-1]
        if not has_vnni:
            goal = "goal (1.5x on a VNNI CPU) not applicable: this CPU has no VNNI"
        else:
            goal = f"goal (1.5x at batch 32 on a VNNI CPU) {'met' if speed[top] >= 1.5 else 'NOT met'}"
            if top != 32:
                goal += f" (measured at batch {top}, not 32)"
        slower = [f"batch {b} ({speed[b]:.2f}x)" for b in batches if speed[b] < 1]
        warning = f"; INT8 is SLOWER than fp32 here at {', '.join(slower)}" if slower else ""
        fp32_mb, int8_mb = mine[(family, ORT_FP32, top)]["file_mb"], mine[(family, ORT_INT8, top)]["file_mb"]
        share = int8_mb / fp32_mb
        lines.append(f"{label}, ORT INT8 vs fp32: " + ", ".join(f"batch {b} {speed[b]:.2f}x" for b in batches)
                     + f" -> {goal}{warning}; file {int8_mb:.2f} MB = {100 * share:.0f} % of fp32's {fp32_mb:.2f} MB "
                     f"-> goal (<= 30 %) {'met' if share <= 0.30 else 'NOT met'}")
    return lines


def deploy_table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table."""
    cells = [(r["model"], f"{r['input']}x{r['input']}", r["runtime"], r["batch"],
              number_or_dash(r["median_ms"], "{:.2f}"), number_or_dash(r["images_per_s"]),
              number_or_dash(r["ratio_vs_eager"], "{:.2f}x"), number_or_dash(r["ratio_vs_peer_ort"], "{:.2f}x"),
              number_or_dash(r["file_mb"], "{:.2f}"), r["note"]) for r in rows]
    return markdown_table(cells, ["model", "input", "runtime", "batch", "median ms", "images/s",
                                  "speed vs PyTorch eager", "speed vs ORT on peer", "file MB", "note"],
                          align="lllrrrrrrl")


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """Header lines (CPU, VNNI, versions, settings), the table and the verdict lines."""
    vnni = cpu_has_vnni()
    header = (f"{cpu_name()}, VNNI ({' or '.join(VNNI_FLAGS)}): {'yes' if vnni else 'no'}; {args['threads']} threads; "
              f"{versions()}\n"
              f"untrained weights (random initialisation: speed only; INT8 calibrated on {args['calibration_images']} "
              f"synthetic images); network graphs only (detectors without decoding and NMS); "
              f"{'dynamo' if args['dynamo'] else 'TorchScript'} ONNX export, opset 18; median of {args['repeats']} "
              f"interleaved rounds after {args['warmup']}; speed ratios: the same model's PyTorch eager time, the "
              f"family peer's ORT fp32 time, over this time (above 1: faster); file MB: the .onnx file, or the "
              f"PyTorch state_dict")
    verdicts = "\n".join(f"verdict: {line}" for line in verdict(rows, vnni))
    return f"{header}\n{deploy_table(rows)}\n{verdicts}"
