"""CPU speed of our SSD300 and Faster-RCNN-300 beside torchvision's MobileNet V3 detectors.

Every detector is first trained briefly (a few SGD steps on the synthetic shapes detection set), so
that, as in a trained model, most anchors score below the threshold: an untrained SSD passes nearly
every anchor of every class to NMS, which makes post-processing unrepresentatively slow.

Inference is timed per call and split by forward hooks into the *network* (backbone, heads, and
Faster-RCNN's box head on its RoIs) and everything else (*pre/post-processing*: resize and
normalise, anchor decoding, RPN proposal selection, NMS, mapping boxes back). All models run in one
process with the same threads and inputs, interleaved with the order rotating each round
(:func:`mnet_vision.benchmarks.timing.rotating_rounds`); medians
are reported with the ratio to torchvision's model of the same family.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn, ssdlite320_mobilenet_v3_large

from mnet_vision.benchmarks.models import task_model
from mnet_vision.benchmarks.timing import number_or_dash, rotating_rounds
from mnet_vision.data.coco import CocoDetectionDataset, collate_detection
from mnet_vision.data.synthetic.shapes import make_shapes_detection_dataset
from mnet_vision.data.transforms import detection_eval_transform
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.markdown import markdown_table

NUM_CLASSES = 10  # the synthetic set's shapes


def candidates(alpha: float = 1.0) -> dict[str, tuple[str, Callable[[], nn.Module]]]:
    """name -> (family, builder) of every benchmarked detector (``NUM_CLASSES`` object classes)."""
    def ours(task: str) -> Callable[[], nn.Module]:
        return lambda: task_model(task, alpha, f"data.num_classes={NUM_CLASSES}")

    # torchvision's builders take the class count with background; no weights can be downloaded here
    tv = dict(weights=None, weights_backbone=None, num_classes=NUM_CLASSES + 1)
    return {
        f"mnet_vision SSD300 MobileNetV1 {alpha}": ("ssd", ours("ssd300")),
        "torchvision ssdlite320_mobilenet_v3_large": ("ssd", lambda: ssdlite320_mobilenet_v3_large(**tv)),
        f"mnet_vision Faster-RCNN-300 MobileNetV1 {alpha}": ("rcnn", ours("faster_rcnn_300")),
        "torchvision fasterrcnn_mobilenet_v3_large_320_fpn":
            ("rcnn", lambda: fasterrcnn_mobilenet_v3_large_320_fpn(**tv)),
    }


def detector_of(model: nn.Module) -> nn.Module:
    """The torchvision detector inside one of our models, or the model itself."""
    head = getattr(model, "head", None)
    return getattr(head, "detector", model)


def network_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose time is 'network': backbone and heads (RPN head, RoIAlign, box head and
    predictor)."""
    det = detector_of(model)
    if hasattr(det, "roi_heads"):
        roi = det.roi_heads
        return [det.backbone, det.rpn.head, roi.box_roi_pool, roi.box_head, roi.box_predictor]
    return [det.backbone, det.head]


class NetworkTimer:
    """Accumulates the wall time spent inside ``modules`` (forward hooks; none of them nests another)."""

    def __init__(self, modules: Sequence[nn.Module]):
        self.seconds = 0.0
        self._start = 0.0
        self._handles = [h for m in modules
                         for h in (m.register_forward_pre_hook(self._pre), m.register_forward_hook(self._post))]

    def _pre(self, module, args) -> None:
        self._start = time.perf_counter()

    def _post(self, module, args, output) -> None:
        self.seconds += time.perf_counter() - self._start

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def shapes_batches(root: str | Path, batch: int, count: int) -> list[dict]:
    """The first ``count`` training batches of the synthetic detection set at ``root`` (fewer if
    it is smaller; the default set is generated there when ``root`` holds none), without augmentation."""
    root = Path(root)
    if not (root / "annotations" / "instances_train2017.json").is_file():
        make_shapes_detection_dataset(root)
    dataset = CocoDetectionDataset(root / "annotations" / "instances_train2017.json", root / "train2017",
                                   detection_eval_transform())
    return [collate_detection([dataset[i] for i in range(start, start + batch)])
            for start in range(0, min(len(dataset) - batch + 1, count * batch), batch)]


def brief_training(model: nn.Module, batches: Sequence[dict], steps: int, lr: float = 0.01) -> float:
    """``steps`` SGD steps (momentum 0.9, gradient norm clipped at 10); returns images/s of training."""
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    start, images = time.perf_counter(), 0
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss = sum(model(batch["images"], batch["targets"]).values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        images += len(batch["images"])
    return images / (time.perf_counter() - start)


def compare_detectors(batch_sizes: Sequence[int] = (1, 8), repeats: int = 5, warmup: int = 3,
                      train_steps: int = 10, train_batch: int = 2, alpha: float = 1.0,
                      data_root: str | Path = "data/synthetic_shapes_detection",
                      threads: int | None = None) -> list[dict]:
    """One row per model and batch size: median total / network / pre+post-processing ms per call,
    images/s, ratio of torchvision's same-family eager time to this one (above 1: faster), and the
    images/s of the brief training (NaN for the folded inference copies of the SSDs)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    train_batches = shapes_batches(data_root, train_batch, train_steps)
    models, families, train_speed = {}, {}, {}
    for name, (family, build) in candidates(alpha).items():
        model = build()
        train_speed[name] = brief_training(model, train_batches, train_steps)
        models[name], families[name] = model.eval(), family
        if family == "ssd":  # the deployment path: BatchNorm folded, NHWC (mnet_vision.inference.fuse)
            folded = f"{name} (BN folded, channels_last)"
            models[folded], families[folded] = prepare_for_inference(model), family
            train_speed[folded] = float("nan")
    rows = []
    for batch in batch_sizes:
        images = shapes_batches(data_root, batch, 1)[0]["images"]
        total = {name: [] for name in models}
        network = {name: [] for name in models}
        timers = {name: NetworkTimer(network_modules(m)) for name, m in models.items()}
        names = list(models)
        with torch.inference_mode():
            for name, measured in rotating_rounds(names, warmup, repeats):
                timers[name].seconds = 0.0
                start = time.perf_counter()
                models[name](images)
                if measured:
                    total[name].append(time.perf_counter() - start)
                    network[name].append(timers[name].seconds)
        for timer in timers.values():
            timer.remove()
        peers = {families[n]: statistics.median(total[n]) for n in names
                 if n.startswith("torchvision") and "folded" not in n}
        for name in names:
            t, net = statistics.median(total[name]), statistics.median(network[name])
            post = statistics.median(a - b for a, b in zip(total[name], network[name]))
            rows.append({"model": name, "batch": batch, "total_ms": 1000 * t, "network_ms": 1000 * net,
                         "post_ms": 1000 * post, "images_per_s": batch / t,
                         "ratio_vs_torchvision": peers[families[name]] / t,
                         "train_images_per_s": train_speed[name]})
    return rows


def detector_table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    return markdown_table([(r["model"], r["batch"], f"{r['total_ms']:.1f}", f"{r['network_ms']:.1f}",
                            f"{r['post_ms']:.1f}", f"{r['images_per_s']:.1f}", f"{r['ratio_vs_torchvision']:.2f}x",
                            number_or_dash(r["train_images_per_s"])) for r in rows],
                          ["model", "batch", "total ms", "network ms", "pre/post ms", "images/s",
                           "speed vs torchvision", "train images/s"])


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (versions, threads, settings) and the table; ``args``: the call's arguments."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, synthetic shapes images, "
            f"median of {args['repeats']} interleaved runs after {args['train_steps']} training steps\n"
            + detector_table(rows))
