"""face-api's input pipeline: padToSquare centred with JS rounding, no resize at the net's size, TF's
legacy bilinear otherwise; landmarks mapped back onto the crop as face-api's postProcess does."""
import numpy as np
import pytest
import torch

from mnet_vision.pretrained.faceapi_input import faceapi_net_input, landmarks_in_crop


def test_a_square_of_the_nets_size_is_only_scaled():
    rgb = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    out = faceapi_net_input(rgb, 112)
    torch.testing.assert_close(out, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


def test_padding_is_centred_the_odd_pixel_after():
    rgb = np.full((4, 7, 3), 255, np.uint8)  # 3 rows short: round(1.5) = 2 after, 1 before
    out = faceapi_net_input(rgb, 7)
    rows = out[0, :, 0]
    assert rows.tolist() == [0, 1, 1, 1, 1, 0, 0]
    cols = faceapi_net_input(rgb.transpose(1, 0, 2).copy(), 7)[0, 0, :]
    assert cols.tolist() == [0, 1, 1, 1, 1, 0, 0]


def test_resize_is_tfs_legacy_bilinear():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[:, 1] = 200  # columns 0, 200: legacy sampling at 0, 0.5, 1, 1.5 -> 0, 100, 200, 200
    out = faceapi_net_input(rgb, 4)[0, 0] * 255
    torch.testing.assert_close(out, torch.tensor([0.0, 100.0, 200.0, 200.0]))


def test_bad_crops_are_refused():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB crop"):
        faceapi_net_input(np.zeros((0, 5, 3), np.uint8), 112)
    with pytest.raises(ValueError, match="float32"):
        faceapi_net_input(np.zeros((5, 5, 3), np.float32), 112)


def test_landmarks_return_to_crop_pixels():
    # a 100 x 50 crop (w x h) in a 112 square: scaled 112 x 56, 28 px of padding above
    relative = torch.tensor([[0.5, 0.5], [0.0, 0.25]], dtype=torch.float64)
    out = landmarks_in_crop(relative, 100, 50)
    torch.testing.assert_close(out, torch.tensor([[50.0, 25.0], [0.0, 0.0]], dtype=torch.float64))
