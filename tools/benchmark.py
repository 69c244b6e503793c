"""CPU benchmarks (inference; training too for detection and attributes), peers side by side in the same run.

    python tools/benchmark.py [--batch 1 32] [--repeats 40] [--threads 2]     # MobileNetV1 vs timm
    python tools/benchmark.py detection [--batch 1 8] [--repeats 10]          # SSD300 / Faster-RCNN vs torchvision
    python tools/benchmark.py index [--sizes 10000 100000 1000000] [--queries 1000] [--threads 2]
                                                                             # faiss ANN indexes vs exact search
    python tools/benchmark.py embedding [--batch 32] [--repeats 10]            # Table 14's students vs a FaceNet-class net
    python tools/benchmark.py attributes [--batch 32] [--repeats 5]            # Table 12's students vs resnet18: train + infer
    python tools/benchmark.py geo [--points 1000000 10000000] [--repeats 3]    # S2 partition build vs s2geometry's loop;
                                                                             # PlaNet photos/s vs ResNet-50
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import argparse
import os

import faiss
import torch

from mnet_vision.attribute_benchmark import attribute_table, compare_attribute_models
from mnet_vision.benchmark import compare_with_timm, rows_table
from mnet_vision.detection_benchmark import compare_detectors, detector_table
from mnet_vision.embedding_benchmark import compare_embedders, embedder_table
from mnet_vision.geo_benchmark import geolocation_rows, geolocation_table, partition_build_rows, partition_table
from mnet_vision.index_benchmark import compare_indexes, index_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=["classification", "detection", "index", "embedding", "attributes",
                                                     "geo"],
                        default="classification")
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="default: 1 32 (classification), 1 8 (detection), "
                        "32 (embedding, attributes)")
    parser.add_argument("--size", type=int, default=224, help="classification input side")
    parser.add_argument("--repeats", type=int, default=None, help="default: 40 (classification), 5 (detection), "
                        "3 (index: passes over all queries), 10 (embedding), 5 (attributes)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-steps", type=int, default=10, help="detection: brief training before timing")
    parser.add_argument("--alpha", type=float, default=1.0, help="detection: width of our MobileNetV1")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="index: gallery sizes")
    parser.add_argument("--queries", type=int, default=1000, help="index: held-out queries (batches of 1000)")
    parser.add_argument("--points", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="geo: photo locations to build a partition from")
    args = parser.parse_args()
    if args.what == "geo":
        rows = partition_build_rows(args.points, repeats=args.repeats or 3)
        print(f"S2 partition build (t_max {rows[0]['t_max']}, t_min {rows[0]['t_min']}, levels {rows[0]['levels']}) of population-"
              f"weighted city points, {rows[0]['threads']} threads, median of {args.repeats or 3}; s2geometry's "
              f"per-point loop (leaf ids only) timed on {rows[0]['loop_points']:,} of the points and extrapolated")
        print(partition_table(rows))
        batch = (args.batch or [32])[0]
        rows = geolocation_rows(batch=batch, repeats=args.repeats or 5, warmup=args.warmup)
        print(f"\nGeolocation on the CPU (torch {torch.__version__}, {torch.get_num_threads()} threads): network, "
              f"hierarchical product of 3 partitions (67/128/321 cells) and top-5, batch {batch}, median of "
              f"{args.repeats or 5} interleaved runs")
        print(geolocation_table(rows))
        return
    if args.what == "index":
        rows = compare_indexes(args.sizes, queries=args.queries, threads=args.threads, repeats=args.repeats or 3)
        print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads "
              f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), face-like 128-D vectors "
              f"(10 per identity), {args.queries} new-image queries, k=10, median of {args.repeats or 3} interleaved passes")
        print(index_table(rows))
        return
    if args.what == "embedding":
        batch = (args.batch or [32])[0]
        rows = compare_embedders(batch, repeats=args.repeats or 10, warmup=args.warmup, threads=args.threads)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, 128-D embeddings, "
              f"median of {args.repeats or 10} interleaved runs")
        print(embedder_table(rows, batch))
        return
    if args.what == "attributes":
        batch, repeats = (args.batch or [32])[0], args.repeats or 5
        rows = compare_attribute_models(batch, repeats=repeats, warmup=args.warmup, threads=args.threads)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, 40 attribute logits, training step = "
              f"forward + BCE + backward + RMSprop, median of {repeats} interleaved runs")
        print(attribute_table(rows, batch))
        return
    if args.what == "detection":
        rows = compare_detectors(args.batch or [1, 8], args.repeats or 5, args.warmup, args.train_steps,
                                 alpha=args.alpha, threads=args.threads)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, synthetic shapes images, "
              f"median of {args.repeats or 5} interleaved runs after {args.train_steps} training steps")
        print(detector_table(rows))
        return
    rows = compare_with_timm(args.batch or [1, 32], args.size, args.repeats or 40, args.warmup, args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}, "
          f"median of {args.repeats or 40} interleaved runs")
    print(rows_table(rows))


if __name__ == "__main__":
    main()
