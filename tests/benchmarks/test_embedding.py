"""The embedding benchmark's table: Table 14's students (and the FaceNet-class peer) side by side."""
from mnet_vision.benchmarks.embedding import compare_embedders, embedder_table


def test_tiny_embedding_table():
    rows = compare_embedders(batch=2, settings=((0.25, 64), (0.25, 32)), repeats=1, warmup=0, peer=False)
    assert [r["model"] for r in rows] == ["0.25 MobileNet-64", "0.25 MobileNet-64 (BN folded, channels_last)",
                                          "0.25 MobileNet-32", "0.25 MobileNet-32 (BN folded, channels_last)"]
    assert rows[0]["speed"] == 1.0 and rows[2]["mult_adds"] < rows[0]["mult_adds"]
    assert rows[0]["params"] == rows[2]["params"]  # resolution changes arithmetic, not parameters
    table = embedder_table(rows, 2)
    assert table.startswith("| model | Mult-Adds |") and table.count("\n") == 5
