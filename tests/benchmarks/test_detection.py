import math

from mnet_vision.benchmarks.detection import compare_detectors, detector_table
from mnet_vision.data.synthetic.shapes import make_shapes_detection_dataset


def test_detection_benchmark_rows_and_table(tmp_path):
    root = make_shapes_detection_dataset(tmp_path / "det", splits={"train2017": 4}, image_size=64)
    rows = compare_detectors(batch_sizes=(1,), repeats=1, warmup=0, train_steps=1, train_batch=2, alpha=0.25,
                             data_root=root)
    assert len(rows) == 6  # 2 SSDs, their BN-folded copies, 2 Faster-RCNNs
    for r in rows:
        assert r["total_ms"] >= r["network_ms"] > 0 and r["images_per_s"] > 0
        assert abs(r["network_ms"] + r["post_ms"] - r["total_ms"]) < 1e-6
        assert ("folded" in r["model"]) == math.isnan(r["train_images_per_s"])
    eager_peers = [r for r in rows if r["model"].startswith("torchvision") and "folded" not in r["model"]]
    assert [r["ratio_vs_torchvision"] for r in eager_peers] == [1.0, 1.0]
    assert detector_table(rows).count("\n") == 7
