"""Classification, detection and face-search pictures: PNGs with the content where it belongs."""
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from mnet_vision.viz.classification import save_confusion_matrix


def test_confusion_png(tmp_path):
    matrix = torch.tensor([[5, 1, 0], [0, 6, 0], [2, 0, 4]])
    path = save_confusion_matrix(matrix, ["circle", "square", "star"], tmp_path / "c.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 200


def test_detections_picture_draws_boxes_where_they_are(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from mnet_vision.viz.detection import save_detections_picture

    image = torch.zeros(3, 40, 80)  # black, 80 wide: enlarged 8x to reach a 320-pixel short side
    path = save_detections_picture(image, torch.tensor([[10.0, 5.0, 30.0, 25.0]]), torch.tensor([1]),
                                   torch.tensor([0.9]), ["__background__", "circle"], tmp_path / "d.png")
    drawn = np.asarray(Image.open(path))
    assert drawn.shape == (320, 640, 3)
    assert drawn[120, 80].any() and drawn[120, 240].any()  # left and right edges (x 10 and 30, times 8)
    assert not drawn[120, 160].any()  # inside the box: untouched
    assert not drawn[300, 600].any()  # far outside
    empty = save_detections_picture(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0),
                                    ["__background__"], tmp_path / "e.png")
    assert not np.asarray(Image.open(empty)).any()


def test_search_picture_with_missing_files(tmp_path):
    import numpy as np
    from PIL import Image

    from mnet_vision.viz.verification import save_search_picture

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "q.png")
    results = [{"query": str(tmp_path / "q.png"), "identity": "ann",
                "matches": [{"identity": "ann", "score": 0.9, "source": str(tmp_path / "q.png")},
                            {"identity": "bob", "score": 0.2, "source": str(tmp_path / "moved.png")}]},
               {"query": "emb.npy[0]", "identity": "unknown",
                "matches": [{"identity": "bob", "score": 0.1, "source": ""}]}]
    path = save_search_picture(results, tmp_path / "hits.png")
    assert path.stat().st_size > 1000


def test_viz_imports_no_lightning():
    # inference tools draw with viz: it must load without Lightning (a fresh process: this one has it)
    code = ("import sys, mnet_vision.viz.attributes, mnet_vision.viz.classification, mnet_vision.viz.detection, "
            "mnet_vision.viz.geo, mnet_vision.viz.verification; assert 'lightning' not in sys.modules, 'lightning'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_large_photos_get_lines_and_captions_scaled_to_their_size(tmp_path):
    from mnet_vision.viz.detection import save_detections_picture

    def drawn_width(side: int) -> int:
        image = torch.zeros(3, side, side, dtype=torch.uint8)
        box = torch.tensor([[side * 0.25, side * 0.25, side * 0.75, side * 0.75]])
        path = save_detections_picture(image, box, torch.tensor([1]), torch.tensor([0.9]), ["bg", "face"],
                                       tmp_path / f"{side}.png")
        row = np.asarray(Image.open(path))[side // 2]  # through the box's middle: its two vertical lines
        return int((row.sum(axis=1) > 0).sum()) // 2

    assert drawn_width(400) == 2  # as before: the default 2 px
    assert drawn_width(2000) == 5  # 2000 / 400
