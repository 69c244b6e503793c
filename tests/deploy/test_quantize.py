"""INT8 static quantization (deploy/quantize.py): the settings ORT recommends with and without VNNI,
per-channel QDQ weights, the fp32 file's metadata carried over, calibration skips and refusals,
the file size of a full-width model, a detector's post-processing left in fp32."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the deploy extra (onnx, onnxruntime) is not installed")
pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxruntime) is not installed")

from mnet_vision.checkpoints import checkpoint_metadata  # noqa: E402
from mnet_vision.config import compose  # noqa: E402
from mnet_vision.deploy.metadata import QUANTIZATION_KEY, read_exported  # noqa: E402
from mnet_vision.deploy.preprocess import model_input  # noqa: E402
from mnet_vision.deploy.quantize import (  # noqa: E402
    MIN_CALIBRATION_IMAGES,
    CalibrationError,
    cpu_has_vnni,
    postprocess_nodes,
    quantize_int8,
    recommended_settings,
    session,
)
from mnet_vision.images import read_rgb  # noqa: E402
from mnet_vision.inference.export import export_onnx  # noqa: E402
from mnet_vision.inference.load import LoadedModel, ModelMeta  # noqa: E402
from mnet_vision.model import DetectorModel, build_model  # noqa: E402
from tests.helpers.configs import tiny_detection_overrides  # noqa: E402
from tests.helpers.models import randomise_batchnorm  # noqa: E402


def export_untrained(out: Path, overrides: list[str], task: str = "ClassificationTask",
                     outputs: str | None = "logits", **export) -> Path:
    """An untrained model of ``overrides`` (BatchNorm randomised, so its outputs are not ~0) exported
    with :func:`export_onnx` (the TorchScript exporter: seconds, not the dynamo exporter's ~20 s)."""
    cfg = compose(overrides)
    model = randomise_batchnorm(build_model(cfg)).eval().requires_grad_(False)
    meta = ModelMeta.from_dict(checkpoint_metadata(cfg, task, outputs), "untrained")
    if isinstance(model, DetectorModel):
        n = model.head.num_classes
        meta = replace(meta, class_names=["__background__", *(f"class{i}" for i in range(1, n + 1))],
                       category_ids=list(range(n + 1)))
    return export_onnx(LoadedModel(model, cfg, meta, source="untrained"), out, dynamo=False, **export).path


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory) -> Path:
    return export_untrained(tmp_path_factory.mktemp("fp32") / "tiny.onnx",
                            ["experiment=shapes", "backbone.alpha=0.25", "task.input_size=32", "data.image_size=32"])


@pytest.fixture(scope="module")
def calibration(shapes_root) -> list[Path]:
    return sorted((Path(shapes_root) / "train").rglob("*.png"))[:24]


def weight_dequantizers(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{Conv/Gemm node: (int weights, scales)}`` of the QDQ graph's quantized weights."""
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    found = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and node.input[1] in producer:
            dq = producer[node.input[1]]
            if dq.op_type == "DequantizeLinear" and dq.input[0] in init:
                found[node.name] = (init[dq.input[0]], init[dq.input[1]])
    return found


def test_cpu_has_vnni_reads_the_flags_line(tmp_path):
    def cpuinfo(flags: str) -> Path:
        path = tmp_path / f"cpuinfo_{len(list(tmp_path.iterdir()))}"
        path.write_text(f"processor\t: 0\nmodel name\t: x avx512_vnni in a name\nflags\t\t: {flags}\n\n")
        return path

    assert cpu_has_vnni(cpuinfo("fpu sse avx2 avx512f avx512_vnni"))
    assert cpu_has_vnni(cpuinfo("fpu avx2 avx_vnni"))
    assert not cpu_has_vnni(cpuinfo("fpu sse avx2 avx512f"))  # the model name's text is not a flag
    assert not cpu_has_vnni(tmp_path / "missing")
    assert isinstance(cpu_has_vnni(), bool)  # this machine's own /proc/cpuinfo


@pytest.mark.parametrize("vnni, weight_type, reduce_range, expected", [
    (True, "QInt8", None, False),    # VNNI: 8-bit weights
    (False, "QInt8", None, True),    # AVX2/AVX-512 without VNNI: U8S8 with 7-bit weights (ORT's advice)
    (False, "QUInt8", None, False),  # U8U8 does not saturate: its 8 bits kept
    (True, "QInt8", True, True),     # an explicit choice wins
])
def test_recommended_settings_follow_ort_advice(vnni, weight_type, reduce_range, expected):
    settings = recommended_settings(vnni, reduce_range, weight_type=weight_type)
    assert (settings.reduce_range, settings.vnni, settings.activation_type) == (expected, vnni, "QUInt8")


def test_recommended_settings_reject_unknown_types():
    with pytest.raises(ValueError, match="weight_type must be one of"):
        recommended_settings(True, weight_type="QInt4")
    with pytest.raises(ValueError, match="calibrate_method"):
        recommended_settings(True, calibrate_method="histogram")


def test_int8_file_is_per_channel_qdq_with_the_fp32_metadata(tiny_fp32, calibration, tmp_path):
    out = quantize_int8(tiny_fp32, tmp_path / "int8.onnx", calibration, vnni=True, speed_rounds=1)
    fp32_props = {p.key: p.value for p in onnx.load(str(tiny_fp32)).metadata_props}
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert all(props[key] == value for key, value in fp32_props.items())  # every fp32 entry, unchanged
    info = read_exported(out).quantization
    assert QUANTIZATION_KEY in props and QUANTIZATION_KEY not in fp32_props
    assert {k: info[k] for k in ("mode", "format", "per_channel", "reduce_range", "activation_type", "weight_type",
                                 "calibration_images", "calibration_skipped")} == {
        "mode": "int8", "format": "QDQ", "per_channel": True, "reduce_range": False, "activation_type": "QUInt8",
        "weight_type": "QInt8", "calibration_images": len(calibration), "calibration_skipped": 0}
    assert set(info["speed"]) == {"batch", "threads", "fp32_ms", "int8_ms", "speedup", "int8_faster"}
    weights = weight_dequantizers(model)
    assert len(weights) >= 14  # the 27 convolutions fused to fewer nodes, and the FC layer
    for name, (ints, scales) in weights.items():
        assert ints.dtype == np.int8, name
        assert scales.shape == (ints.shape[0],), name  # one scale per output channel
        assert np.abs(ints).max() == 127, name  # symmetric 8-bit weights: each layer's largest reaches 127
    # the INT8 model computes what the fp32 one does, up to quantization noise
    batch = model_input([read_rgb(p) for p in calibration[:8]], read_exported(tiny_fp32).preprocess)
    fp32 = session(tiny_fp32).run(None, {"images": batch})[0]
    int8 = session(out).run(None, {"images": batch})[0]
    assert np.corrcoef(fp32.ravel(), int8.ravel())[0, 1] > 0.95
    with pytest.raises(ValueError, match="already quantized"):
        quantize_int8(out, tmp_path / "twice.onnx", calibration)


def test_without_vnni_weights_are_7_bit(tiny_fp32, calibration, tmp_path):
    out = quantize_int8(tiny_fp32, tmp_path / "int8.onnx", calibration, vnni=False, speed_rounds=0)
    info = read_exported(out).quantization
    assert (info["reduce_range"], info["vnni"]) == (True, False) and "speed" not in info
    for name, (ints, _) in weight_dequantizers(onnx.load(str(out))).items():
        assert np.abs(ints.astype(int)).max() <= 64, name  # 7 bits


def test_unreadable_calibration_images_are_counted_skips(tiny_fp32, calibration, tmp_path, caplog):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = quantize_int8(tiny_fp32, tmp_path / "int8.onnx", [*calibration[:16], broken, tmp_path / "missing.jpg"],
                        vnni=True, speed_rounds=0)
    info = read_exported(out).quantization
    assert (info["calibration_images"], info["calibration_skipped"]) == (16, 2)
    assert "skipped 2 unreadable image(s) of 18" in caplog.text and "broken.png" in caplog.text


def test_too_few_readable_calibration_images_are_refused(tiny_fp32, calibration, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    out = tmp_path / "int8.onnx"
    with pytest.raises(CalibrationError, match=f"at least {MIN_CALIBRATION_IMAGES} readable images; got 15 readable "
                                               "of 16 given \\(1 unreadable\\)"):
        quantize_int8(tiny_fp32, out, [*calibration[:15], broken])
    with pytest.raises(CalibrationError, match="at least 4 readable images; got 0 readable of 0"):
        quantize_int8(tiny_fp32, out, [], min_images=4)
    assert not out.exists()


def test_refusing_gate_writes_nothing(tiny_fp32, calibration, tmp_path):
    out = tmp_path / "int8.onnx"
    out.write_bytes(b"an older file")

    def refuse(path: Path) -> dict:
        assert onnx.load(str(path)).graph.node  # the gate sees the quantized model
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        quantize_int8(tiny_fp32, out, calibration, vnni=True, speed_rounds=0, gate=refuse)
    assert out.read_bytes() == b"an older file"
    written = quantize_int8(tiny_fp32, out, calibration, vnni=True, speed_rounds=0, gate=lambda path: {"passed": True})
    assert read_exported(written).quantization["gate"] == {"passed": True}


def test_int8_of_a_full_width_classifier_is_at_most_30_percent_of_fp32(calibration, tmp_path):
    # alpha 1.0: 3.2 M parameters, so the file is weights, not graph (sizes do not depend on the input size)
    fp32 = export_untrained(tmp_path / "fp32.onnx", ["experiment=shapes", "backbone.alpha=1.0", "task.input_size=64",
                                                     "data.image_size=64"])
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", calibration[:16], vnni=True, speed_rounds=0)
    assert int8.stat().st_size <= 0.30 * fp32.stat().st_size


def test_a_detectors_in_graph_postprocessing_stays_fp32(shapes_root, tmp_path):
    fp32 = export_untrained(tmp_path / "ssd.onnx", tiny_detection_overrides(tmp_path / "data"), "DetectionTask", None,
                            nms_in_graph=True)
    source = onnx.load(str(fp32))
    post = set(postprocess_nodes(source, ["bbox_regression", "cls_logits"]))
    assert {n.op_type for n in source.graph.node if n.name in post} >= {"NonMaxSuppression", "Exp"}
    out = quantize_int8(fp32, tmp_path / "int8.onnx", sorted((Path(shapes_root) / "train").rglob("*.png"))[:16],
                        vnni=True, speed_rounds=0)
    model = onnx.load(str(out))
    assert read_exported(out).quantization["fp32_nodes"] > 0
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    # the network is quantized, its raw outputs leave it dequantized to fp32 ...
    assert {producer[name].op_type for name in ("bbox_regression", "cls_logits")} == {"DequantizeLinear"}
    # ... and no node after them (decoding, NonMaxSuppression) is quantized: nothing downstream of the
    # raw outputs feeds a QuantizeLinear
    seen, stack = set(), ["bbox_regression", "cls_logits"]
    while stack:
        for node in consumers.get(stack.pop(), []):
            assert node.op_type != "QuantizeLinear", node.name
            if node.name not in seen:
                seen.add(node.name)
                stack.extend(node.output)
    assert "NonMaxSuppression" in {producer[o].op_type for o in producer if producer[o].name in seen}
