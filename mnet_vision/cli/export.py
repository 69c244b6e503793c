"""Export a checkpoint or a pretrained model to ONNX, with its metadata, checked on export.

    python tools/export.py ckpt=outputs/shapes/<time>/checkpoints/last.ckpt out=shapes.onnx
    python tools/export.py pretrained=faceapi_ssd out=faceapi_ssd.onnx nms_in_graph=true

Keys and defaults: conf/export.yaml (ckpt or pretrained, out, format: onnx, nms_in_graph (SSD),
opset, dynamo: the dynamo exporter first, TorchScript where it fails, check_atol: the largest
ONNX Runtime vs PyTorch difference allowed on the check batch; above it nothing is written).
"""
import hydra
from omegaconf import DictConfig

from mnet_vision.config import CONF_DIR
from mnet_vision.inference.export import ExportError, export_onnx
from mnet_vision.pretrained.models import load_pretrained


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    if (cfg.ckpt is None) == (cfg.pretrained is None):
        raise SystemExit("export: give ckpt=<checkpoint> or pretrained=<name> (e.g. pretrained=faceapi_ssd), not both")
    if cfg.format != "onnx":
        raise SystemExit(f"export: format={cfg.format} is not supported; the one format is onnx")
    model = cfg.ckpt if cfg.pretrained is None else load_pretrained(str(cfg.pretrained), fast=False)
    try:
        result = export_onnx(model, cfg.out, nms_in_graph=bool(cfg.nms_in_graph), opset=int(cfg.opset),
                             dynamo=bool(cfg.dynamo), check_atol=float(cfg.check_atol))
    except ExportError as error:
        raise SystemExit(f"export: {error}") from error
    print(f"{result.path}: {result.size_bytes / 1e6:.2f} MB, outputs {', '.join(result.outputs)}, "
          f"{result.exporter} exporter, max abs diff vs PyTorch {result.max_abs_diff:.3g}")
    # Post-export steps on result.path (quantize=int8 ...) follow here.
