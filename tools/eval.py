"""Evaluate a checkpoint: python tools/eval.py ckpt=outputs/.../checkpoints/best-epoch009.ckpt [split=val]

Any other key=value (data.root=..., data.batch_size=..., trainer.accelerator=...) overrides the
config stored in the checkpoint. Pictures (confusion_test.png) go to out_dir, by default
<run dir>/eval_<split>.
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import json
import sys

from omegaconf import OmegaConf

from mnet_vision.reporting import print_metrics
from mnet_vision.training import evaluate


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    if "ckpt" not in args:
        sys.exit("usage: python tools/eval.py ckpt=PATH [split=test|val] [output=metrics.json] [out_dir=DIR] "
                 "[data.root=...]")
    ckpt, split = args.pop("ckpt"), args.pop("split", "test")
    output, out_dir = args.pop("output", None), args.pop("out_dir", None)
    metrics = evaluate(ckpt, split, args, out_dir=out_dir)
    print_metrics(metrics)
    if output:
        with open(output, "w") as f:
            json.dump(metrics, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])
