from mnet_vision.training.report import metrics_table


def test_metrics_table_lists_numbers_only():
    table = metrics_table({"b/x": 0.5, "a/y": 3, "path": "/tmp/x"})
    assert table.splitlines()[2:] == ["| a/y | 3 |", "| b/x | 0.5000 |"]
