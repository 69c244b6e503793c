"""The deployment benchmark: every runtime's row, the ratios, the file sizes and the verdict lines."""
import importlib.util
import math

import pytest
import torch
from torchvision.models.detection import ssdlite320_mobilenet_v3_large
from torchvision.models.detection.image_list import ImageList

from mnet_vision.benchmarks.deploy import (
    EAGER,
    FOLDED,
    OPENVINO,
    OPENVINO_INT8,
    OPENVINO_MISSING,
    ORT_FP32,
    ORT_INT8,
    compare_deployments,
    network,
    our_model,
    report,
    verdict,
)
from mnet_vision.inference.export import SSDNetwork

pytest.importorskip("onnxruntime", reason="the deployment benchmark runs ONNX Runtime: pip install -e '.[dev]'")
pytest.importorskip("timm", reason="the deployment benchmark's MobileNet V1 peer is timm's: pip install -e '.[dev]'")

TINY = dict(models=("mobilenet_v1",), batch_sizes=(1, 2), repeats=1, warmup=0, threads=2, input_sizes=(32,),
            calibration_images=16, dynamo=False, openvino=True)


def test_tiny_run_has_every_runtime_the_ratios_sizes_and_verdict():
    rows = compare_deployments(**TINY)
    runtimes = [EAGER, FOLDED, ORT_FP32, ORT_INT8, OPENVINO, OPENVINO_INT8, EAGER, ORT_FP32]
    assert [r["runtime"] for r in rows] == runtimes * 2 and [r["batch"] for r in rows] == [1] * 8 + [2] * 8
    assert [r["peer"] for r in rows[:8]] == [False] * 6 + [True] * 2
    assert {r["model"] for r in rows if r["peer"]} == {"timm mobilenetv1_100"} and {r["input"] for r in rows} == {32}
    has_openvino = importlib.util.find_spec("openvino") is not None
    for r in rows:
        if r["runtime"] in (OPENVINO, OPENVINO_INT8) and not has_openvino:
            assert r["note"] == OPENVINO_MISSING and math.isnan(r["median_ms"])
            continue
        assert r["note"] == "" and r["median_ms"] > 0 and r["images_per_s"] > 0 and r["file_mb"] > 0
        if r["runtime"] == EAGER:
            assert r["ratio_vs_eager"] == 1.0
        if r["peer"] and r["runtime"] == ORT_FP32:
            assert r["ratio_vs_peer_ort"] == 1.0
    fp32, int8 = (next(r["file_mb"] for r in rows if not r["peer"] and r["runtime"] == runtime)
                  for runtime in (ORT_FP32, ORT_INT8))
    assert int8 < 0.3 * fp32  # per-channel INT8 weights: a quarter of the fp32 bytes, plus scales
    text = report(rows, TINY)
    header, settings, *table = text.splitlines()
    assert "VNNI (avx512_vnni or avx_vnni): " in header and "2 threads" in header and "onnxruntime " in header
    assert settings.startswith("untrained weights") and "TorchScript ONNX export" in settings
    assert table[0].startswith("| model | input | runtime | batch | median ms |")
    assert sum(line.startswith("| ") for line in table) == 1 + len(rows)  # the header and one line per row
    verdicts = [line for line in table if line.startswith("verdict: ")]
    assert len(verdicts) == 2
    assert verdicts[0].startswith("verdict: MobileNet V1, our ORT fp32 vs ORT on timm mobilenetv1_100's export: "
                                  "batch 1 ")
    assert "INT8 vs fp32: batch 1" in verdicts[1] and "goal (<= 30 %) met" in verdicts[1]


def _rows(fp32_ms: float, int8_ms: float, peer_ms: float, int8_mb: float = 4.0) -> list[dict]:
    """Rows as compare_deployments makes them: our ORT fp32 and INT8 and timm's ORT fp32 at batch 32."""
    def row(runtime, ms, mb, peer=False):
        return {"family": "mobilenet_v1", "peer": peer, "runtime": runtime, "batch": 32, "median_ms": ms,
                "file_mb": mb, "note": ""}
    return [row(ORT_FP32, fp32_ms, 16.0), row(ORT_INT8, int8_ms, int8_mb), row(ORT_FP32, peer_ms, 16.0, peer=True)]


def test_verdict_names_each_goal_met_or_not():
    level, faster = verdict(_rows(100.0, 50.0, 98.0), has_vnni=True)
    assert level.endswith("batch 32 100.00 vs 98.00 ms (0.98x) -> goal (at most 5 % slower) met")
    assert "batch 32 2.00x -> goal (1.5x at batch 32 on a VNNI CPU) met; file 4.00 MB = 25 %" in faster
    assert "SLOWER" not in faster
    behind, slower = verdict(_rows(100.0, 125.0, 90.0, int8_mb=6.0), has_vnni=True)
    assert behind.endswith("(0.90x) -> goal (at most 5 % slower) NOT met")
    assert "batch 32 0.80x -> goal (1.5x at batch 32 on a VNNI CPU) NOT met; INT8 is SLOWER than fp32 here at " \
           "batch 32 (0.80x); file 6.00 MB = 38 % of fp32's 16.00 MB -> goal (<= 30 %) NOT met" in slower
    _, no_vnni = verdict(_rows(100.0, 80.0, 100.0), has_vnni=False)
    assert "goal (1.5x on a VNNI CPU) not applicable: this CPU has no VNNI" in no_vnni
    failed = _rows(100.0, math.nan, 100.0)
    failed[1]["note"] = "not measured: quantize_int8 failed: ValueError: no"
    assert verdict(failed, has_vnni=True)[1] == ("mnet_vision MobileNetV1 1.0 classifier, ORT INT8: not measured: "
                                                 "quantize_int8 failed: ValueError: no")


def test_detector_network_is_the_exported_graph_for_ours_and_the_peer():
    torch.manual_seed(0)
    ours = our_model("ssd300", input_size=64).model
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, expected = network(ours)(images), SSDNetwork(ours.head).eval()(images)
    assert all(torch.equal(g, e) for g, e in zip(got, expected))
    assert got[1].shape[-1] == 91  # TF's COCO label map: 90 ids and the background
    peer = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    x = torch.randn(1, 3, 128, 128)  # its 320 makes no other point, slower
    with torch.no_grad():
        deltas, logits = network(peer)(x)
        maps = list(peer.backbone(x).values())
    anchors = peer.anchor_generator(ImageList(x, [(128, 128)]), maps)[0]
    assert deltas.shape == (1, len(anchors), 4) and logits.shape == (1, len(anchors), 91)
