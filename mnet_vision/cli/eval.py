"""Evaluate a checkpoint, or score a COCO results file against its ground truth.

    python tools/eval.py ckpt=outputs/.../checkpoints/best-epoch009.ckpt [split=val] [out_dir=DIR]
    python tools/eval.py gt=instances_val2017.json results=detections.json [output=metrics.json]

With ckpt=, every dotted key given (data.root=..., data.batch_size=..., trainer.accelerator=...,
task.module.fars=[...]) overrides the config stored in the checkpoint, and data=NAME evaluates on
conf/data/NAME.yaml instead (e.g. an embedding model on real LFW: data=identities data.root=/data
data.splits=[train,val,lfw] data.pairs={test:/data/pairs.txt}); conf/eval.yaml declares every key of
conf/data/ and conf/trainer/ and task.module.fars; another takes a + (+task.module.margin=0.3). A
classifier's confusion_test.png or a detector's detections_test.json and detections_test/*.png go to
out_dir, by default <run dir>/eval_<split>. A detector is scored with the 12 COCO box metrics (pycocotools), as is a
results file made anywhere (gt= and results=). ckpt= may be an exported .onnx (tools/export.py): the
network runs in ONNX Runtime, everything else (data, metrics, the run config) comes from the checkpoint
it was exported from (named in its metadata), and the metrics equal the checkpoint's within 1e-4.
Tables a task writes (a geolocation model's Table 11 beside the most-populous-cell baseline,
per-attribute APs) are printed after the metrics.
"""
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnet_vision.cli.overrides import command_line_overrides
from mnet_vision.config import CONF_DIR
from mnet_vision.deploy.runtime import is_onnx_path
from mnet_vision.inference.onnx_backend import onnx_evaluation
from mnet_vision.metrics.coco import coco_table, evaluate_coco
from mnet_vision.outputs import check_writable, refuse_overwrite
from mnet_vision.textfiles import write_json
from mnet_vision.training import evaluate
from mnet_vision.training.report import print_metrics

USAGE = ("usage: python tools/eval.py ckpt=PATH [split=test|val] [output=metrics.json] [out_dir=DIR] [data.root=...]\n"
         "       python tools/eval.py gt=GROUND_TRUTH.json results=DETECTIONS.json [output=metrics.json]")
OWN = ("ckpt", "split", "out_dir", "gt", "results", "output")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    if cfg.output:  # found unwritable, or to be written over an input, before the evaluation, not after it
        refuse_overwrite(cfg.output, [cfg[k] for k in ("ckpt", "gt", "results") if cfg[k] is not None], "output")
        check_writable(Path(cfg.output).resolve().parent, "folder of output=")
    if cfg.gt is not None and cfg.results is not None:
        metrics = evaluate_coco(gt=cfg.gt, results=cfg.results)
        print(coco_table(metrics))
    elif cfg.ckpt is not None:
        ckpt, wrap = onnx_evaluation(cfg.ckpt) if is_onnx_path(cfg.ckpt) else (cfg.ckpt, None)
        metrics = evaluate(ckpt=ckpt, split=str(cfg.split), overrides=command_line_overrides(cfg, OWN),
                           out_dir=cfg.out_dir, data=HydraConfig.get().runtime.choices.get("data"), wrap_model=wrap)
        print_metrics(metrics)
        for table in sorted(Path(metrics["out_dir"]).glob(f"*_{cfg.split}.md")):  # a task's own tables (Table 11, APs)
            print(f"\n{table.name}:\n{table.read_text()}")
    else:
        sys.exit(USAGE)
    if cfg.output:
        write_json(cfg.output, metrics)
