"""Draw the all-vs-all ROC curves of several embedding runs in one picture (teacher beside student).

    python tools/roc.py out=docs/faces_roc.png teacher=outputs/demo/faces_teacher/embeddings_test.pt \
        student=outputs/demo/faces_student/embeddings_test.pt

Each NAME=FILE is an embeddings_test.pt that a test run writes (tools/train.py or tools/eval.py).
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys

from mnet_vision.checkpoints import load_file
from mnet_vision.metrics.verification import all_pairs, roc_points
from mnet_vision.viz.verification import save_roc_curve

USAGE = "usage: python tools/roc.py out=PNG NAME=embeddings_test.pt [NAME=embeddings_test.pt ...]"


def main(argv: list[str]) -> None:
    # split by hand: curve names are labels ("teacher 1.0"), not config keys with dots
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    out = args.pop("out", None)
    if out is None or not args or len(args) + 1 != len(argv):
        sys.exit(USAGE)
    curves = {}
    for name, path in args.items():
        data = load_file(path)
        scores, issame = all_pairs(data["embeddings"].numpy(), data["labels"].numpy())
        if issame.all() or not issame.any():  # the ROC needs both kinds of pair (else NaN rates: no curve)
            sys.exit(f"{name}={path}: {len(issame)} pairs, {int(issame.sum())} genuine: an ROC needs "
                     "genuine and impostor pairs (two or more identities, one with two or more images)")
        curves[name] = roc_points(scores, issame)
    print(f"ROC curves written to {save_roc_curve(curves, out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
