import torch
from PIL import Image

from mnet_vision.reporting import metrics_table, save_confusion_matrix


def test_confusion_png(tmp_path):
    matrix = torch.tensor([[5, 1, 0], [0, 6, 0], [2, 0, 4]])
    path = save_confusion_matrix(matrix, ["circle", "square", "star"], tmp_path / "c.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 200


def test_metrics_table_lists_numbers_only():
    table = metrics_table({"b/x": 0.5, "a/y": 3, "path": "/tmp/x"})
    assert table.splitlines()[2:] == ["| a/y | 3 |", "| b/x | 0.5000 |"]
