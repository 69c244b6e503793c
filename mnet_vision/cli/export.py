"""Export a checkpoint or a pretrained model to ONNX, with its metadata, checked on export.

    python tools/export.py ckpt=outputs/shapes/<time>/checkpoints/last.ckpt out=shapes.onnx
    python tools/export.py pretrained=faceapi_ssd out=faceapi_ssd.onnx nms_in_graph=true

Keys and defaults: conf/export.yaml (ckpt or pretrained, out, format: onnx, nms_in_graph (SSD),
opset, dynamo: the dynamo exporter first, TorchScript where it fails, check_atol: the largest
ONNX Runtime vs PyTorch difference allowed on the check batch; above it nothing is written).

    python tools/export.py ckpt=... out=shapes.onnx quantize=int8 calib=train tolerance=1.0

``quantize=int8`` also writes the INT8 quantization (``int8_out``, default ``<out>.int8.onnx``),
calibrated on ``calib`` (a folder of images, or a split of the checkpoint's data), only if the gate
passes: the task's metric on ``gate_split`` loses at most ``tolerance`` points (gate=false: no gate).
"""
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from mnet_vision.config import CONF_DIR
from mnet_vision.deploy.quantize import CalibrationError, quantize_int8
from mnet_vision.inference.export import ExportError, export_onnx
from mnet_vision.inference.int8_gate import Int8GateError, calibration_files, quantization_summary, quantize_with_gate
from mnet_vision.inference.load import MODEL_KEYS, load_model
from mnet_vision.pretrained.models import load_pretrained


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    if (cfg.ckpt is None) == (cfg.pretrained is None):
        raise SystemExit("export: give ckpt=<checkpoint> or pretrained=<name> (e.g. pretrained=faceapi_ssd), not both")
    if cfg.format != "onnx":
        raise SystemExit(f"export: format={cfg.format} is not supported; the one format is onnx")
    if cfg.quantize is not None and cfg.gate and cfg.pretrained is not None:  # before minutes of export
        raise SystemExit("export: the INT8 gate measures the checkpoint's held-out split and a pretrained model has "
                         "no data config: give gate=false to write it unmeasured")
    model = cfg.ckpt if cfg.pretrained is None else load_pretrained(str(cfg.pretrained), fast=False)
    try:
        result = export_onnx(model, cfg.out, nms_in_graph=bool(cfg.nms_in_graph), opset=int(cfg.opset),
                             dynamo=bool(cfg.dynamo), check_atol=float(cfg.check_atol))
    except ExportError as error:
        raise SystemExit(f"export: {error}") from error
    print(f"{result.path}: {result.size_bytes / 1e6:.2f} MB, outputs {', '.join(result.outputs)}, "
          f"{result.exporter} exporter, max abs diff vs PyTorch {result.max_abs_diff:.3g}")
    if cfg.quantize is not None:
        quantize(cfg, result.path)


def quantize(cfg: DictConfig, fp32: Path) -> None:
    """``quantize=int8``: the INT8 file beside ``fp32``, gated on the checkpoint's held-out split."""
    if cfg.quantize != "int8":
        raise SystemExit(f"export: quantize={cfg.quantize} is not supported; the one mode is int8")
    if cfg.calib is None:
        raise SystemExit("export: quantize=int8 needs calib=<folder of images> or calib=<split> (train, val, test)")
    data = None
    if cfg.ckpt is not None:
        data_cfg = load_model(cfg.ckpt, fast=False, built=(*MODEL_KEYS, "data")).cfg.data
        if cfg.data_root is not None:
            with open_dict(data_cfg):
                data_cfg.root = str(cfg.data_root)
        data = instantiate(data_cfg)
    out = Path(cfg.int8_out) if cfg.int8_out is not None else fp32.with_suffix(".int8.onnx")
    options = {"per_channel": bool(cfg.per_channel), "reduce_range": cfg.reduce_range,
               "min_images": int(cfg.calib_min)}
    try:
        files = calibration_files(cfg.calib, data, cfg.calib_max)
        if cfg.gate:
            path, _ = quantize_with_gate(fp32, out, files, data, split=str(cfg.gate_split),
                                         tolerance=float(cfg.tolerance), **options)
        else:
            path = quantize_int8(fp32, out, files, **options)
    except (CalibrationError, Int8GateError, FileNotFoundError) as error:
        raise SystemExit(f"export: {error}") from error
    print(quantization_summary(path))
