import random

import numpy as np
import torch

from mnet_vision.training.callbacks import RNGState


def _draw():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_state_round_trip_through_weights_only_save(tmp_path):
    cb = RNGState()
    state = cb.state_dict()
    expected = _draw()
    torch.save({"rng": state}, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)["rng"]
    _draw()  # move every generator on
    restored = RNGState()
    restored.load_state_dict(loaded)
    restored.on_train_start(None, None)
    assert _draw() == expected
