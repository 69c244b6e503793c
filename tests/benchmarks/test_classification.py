"""The classification benchmark: our MobileNet V1 beside timm's, rows and table."""
from mnet_vision.benchmarks.classification import compare_with_timm, rows_table


def test_benchmark_rows_and_table():
    rows = compare_with_timm(batch_sizes=(1, 2), size=64, repeats=1, warmup=0)
    assert len(rows) == 8 and {r["batch"] for r in rows} == {1, 2}
    for r in rows:
        assert r["median_ms"] > 0 and r["images_per_s"] > 0 and r["ratio_vs_timm_eager"] > 0
    baseline = [r for r in rows if r["model"] == "timm mobilenetv1_100 (eager)"]
    assert all(r["ratio_vs_timm_eager"] == 1.0 for r in baseline)
    assert rows_table(rows).count("\n") == 9

