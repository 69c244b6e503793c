"""CPU inference benchmark: our MobileNet V1 1.0-224 classifier vs timm's mobilenetv1_100.

    python tools/benchmark.py [--batch 1 32] [--repeats 40] [--threads 2]
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import argparse

import torch

from mnet_vision.benchmark import compare_with_timm, rows_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    rows = compare_with_timm(args.batch, args.size, args.repeats, args.warmup, args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}, "
          f"median of {args.repeats} interleaved runs")
    print(rows_table(rows))


if __name__ == "__main__":
    main()
