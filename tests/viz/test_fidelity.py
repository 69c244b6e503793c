"""The pair-distance picture: one panel per student, a PNG of the expected layout."""
import numpy as np
from PIL import Image

from mnet_vision.viz.fidelity import save_pair_distances


def test_one_panel_per_student(tmp_path):
    rng = np.random.default_rng(0)
    teacher = rng.uniform(0.3, 1.0, 45)
    panels = {name: {"teacher": teacher, "student": teacher * scale + noise * rng.normal(size=45),
                     "teacher_threshold": 0.6, "student_threshold": 0.6 * scale}
              for name, scale, noise in (("faithful", 0.7, 0.0), ("noisy", 0.7, 0.3), ("constant", 0.0, 0.0))}
    path = save_pair_distances(panels, tmp_path / "pairs.png", columns=2)
    width, height = Image.open(path).size
    assert width > height * 0.9  # 2 columns x 2 rows (the fourth cell left blank)
    one = save_pair_distances({"faithful": panels["faithful"]}, tmp_path / "one.png")
    assert Image.open(one).size[0] < width * 0.7
