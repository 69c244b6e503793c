"""Run a teacher checkpoint once over a split of its data and store its outputs by sample id, so a
distillation run never runs the teacher again (distill/teacher=stored).

    python tools/dump_teacher.py ckpt=outputs/faces_teacher/<time>/checkpoints/last.ckpt out=teacher_train.pt
    python tools/train.py experiment=facenet_distill distill/teacher=stored distill.teacher.path=teacher_train.pt

Keys: ckpt, out, split (train), device (cpu), fast (default false: these are training targets, as the
model was evaluated; true folds BatchNorm, outputs equal within 1e-4); any other key=value
(data.root=...) overrides the data config stored in the checkpoint: the outputs must be made on the
student's training images.
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys

from omegaconf import OmegaConf

from mnet_vision.inference.dump_teacher import dump_teacher_outputs

USAGE = "usage: python tools/dump_teacher.py ckpt=PATH out=FILE [split=train] [device=cpu] [fast=false] [data.root=...]"


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    if "ckpt" not in args or "out" not in args:
        sys.exit(USAGE)
    ckpt, out = args.pop("ckpt"), args.pop("out")
    split, device, fast = args.pop("split", "train"), args.pop("device", "cpu"), bool(args.pop("fast", False))
    print(f"teacher outputs written to {dump_teacher_outputs(ckpt, out, split, args, device, fast)}")


if __name__ == "__main__":
    main(sys.argv[1:])
