"""Evaluate a checkpoint, or score a COCO results file against its ground truth.

    python tools/eval.py ckpt=outputs/.../checkpoints/best-epoch009.ckpt [split=val] [out_dir=DIR]
    python tools/eval.py gt=instances_val2017.json results=detections.json [output=metrics.json]

With ckpt=, any other key=value (data.root=..., data.batch_size=..., trainer.accelerator=...)
overrides the config stored in the checkpoint, and data=NAME evaluates on conf/data/NAME.yaml instead
(e.g. an embedding model on real LFW: data=identities data.root=/data data.splits=[train,val,lfw]
data.pairs={test:/data/pairs.txt}); a classifier's confusion_test.png or a detector's
detections_test.json and detections_test/*.png go to out_dir, by default <run dir>/eval_<split>.
A detector is scored with the 12 COCO box metrics (pycocotools), as is a results file made anywhere
(gt= and results=). Tables a task writes (a geolocation model's Table 11 beside the most-populous-cell
baseline, per-attribute APs) are printed after the metrics.
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys
from pathlib import Path

from omegaconf import OmegaConf

from mnet_vision.textfiles import write_json
from mnet_vision.metrics.coco import coco_table, evaluate_coco
from mnet_vision.outputs import check_writable, refuse_overwrite
from mnet_vision.training.report import print_metrics
from mnet_vision.training import evaluate

USAGE = ("usage: python tools/eval.py ckpt=PATH [split=test|val] [output=metrics.json] [out_dir=DIR] [data.root=...]\n"
         "       python tools/eval.py gt=GROUND_TRUTH.json results=DETECTIONS.json [output=metrics.json]")


def main(argv: list[str]) -> None:
    data = [a.split("=", 1)[1] for a in argv if a.startswith("data=")]  # a data config group, not a key
    args = OmegaConf.from_dotlist([a for a in argv if not a.startswith("data=")])
    output = args.pop("output", None)
    if output:  # found unwritable, or to be written over an input, before the evaluation, not after it
        refuse_overwrite(output, [args[k] for k in ("ckpt", "gt", "results") if k in args], "output")
        check_writable(Path(output).resolve().parent, "folder of output=")
    if "gt" in args and "results" in args:
        metrics = evaluate_coco(args.gt, args.results)
        print(coco_table(metrics))
    elif "ckpt" in args:
        ckpt, split, out_dir = args.pop("ckpt"), args.pop("split", "test"), args.pop("out_dir", None)
        metrics = evaluate(ckpt, split, args, out_dir=out_dir, data=data[-1] if data else None)
        print_metrics(metrics)
        for table in sorted(Path(metrics["out_dir"]).glob(f"*_{split}.md")):  # a task's own tables (Table 11, APs)
            print(f"\n{table.name}:\n{table.read_text()}")
    else:
        sys.exit(USAGE)
    if output:
        write_json(output, metrics)


if __name__ == "__main__":
    main(sys.argv[1:])
