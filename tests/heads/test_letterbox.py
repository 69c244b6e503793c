"""TF.js detector input: TF's legacy bilinear resize and the bottom/right letterbox."""
import pytest
import torch

from mnet_vision.heads.letterbox import LetterboxTransform, tf_legacy_resize_bilinear


def test_legacy_resize_samples_at_i_times_scale_without_half_pixel_offset():
    row = torch.tensor([[[0.0, 10.0]]])  # (1, 1, 2)
    # up 2 -> 4: sources 0, 0.5, 1, 1.5; the right neighbour is clamped to the last pixel
    up = tf_legacy_resize_bilinear(row.expand(1, 2, 2).contiguous(), 2, 4)
    torch.testing.assert_close(up[0, 0], torch.tensor([0.0, 5.0, 10.0, 10.0]))
    # down 4 -> 2: sources 0 and 2 exactly, the left/top pixel of each pair (half-pixel would average)
    image = torch.arange(16.0).reshape(1, 4, 4)
    torch.testing.assert_close(tf_legacy_resize_bilinear(image, 2, 2), torch.tensor([[[0.0, 2.0], [8.0, 10.0]]]))
    # 3 -> 2: sources 0 and 1.5
    torch.testing.assert_close(tf_legacy_resize_bilinear(torch.tensor([[[0.0, 3.0, 6.0]]]), 1, 2),
                               torch.tensor([[[0.0, 4.5]]]))
    with pytest.raises(ValueError, match="\\(C, H, W\\)"):
        tf_legacy_resize_bilinear(torch.zeros(1, 1, 4, 4), 2, 2)


def test_legacy_resize_matches_a_float64_loop_on_random_sizes():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 7, 11, generator=g) * 255
    out = tf_legacy_resize_bilinear(image, 5, 3)
    for r in range(5):
        for c in range(3):
            y, x = r * 7 / 5, c * 11 / 3
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, 6) if y > y0 else y0, min(x0 + 1, 10) if x > x0 else x0
            im = image.double()
            top = im[:, y0, x0] + (im[:, y0, x1] - im[:, y0, x0]) * (x - x0)
            bottom = im[:, y1, x0] + (im[:, y1, x1] - im[:, y1, x0]) * (x - x0)
            torch.testing.assert_close(out[:, r, c], (top + (bottom - top) * (y - y0)).float(), rtol=1e-6, atol=0)


def test_letterbox_pads_black_at_the_bottom_right_and_maps_boxes_back():
    transform = LetterboxTransform(8, [0.5] * 3, [0.5] * 3, resize="letterbox", method="tf_legacy_bilinear").eval()
    image = torch.ones(3, 4, 8)  # white, wider than tall: the square is 8 x 8, rows 4..7 are padding
    target = {"boxes": torch.tensor([[2.0, 1.0, 6.0, 3.0]]), "labels": torch.tensor([1])}
    transform.train()
    batch, targets = transform([image], [target])
    assert batch.tensors.shape == (1, 3, 8, 8)
    assert torch.all(batch.tensors[0, :, :4] == 1.0) and torch.all(batch.tensors[0, :, 4:] == -1.0)  # black
    torch.testing.assert_close(targets[0]["boxes"], target["boxes"])  # side 8 -> 8: unchanged
    transform.eval()
    small = LetterboxTransform(4, [0.5] * 3, [0.5] * 3, resize="letterbox", method="tf_legacy_bilinear").eval()
    result = small.postprocess([{"boxes": torch.tensor([[1.0, 0.5, 3.0, 3.5]])}], [(4, 4)], [(4, 8)])
    # one scale for both axes (8 / 4), clipped to the 4 x 8 original
    torch.testing.assert_close(result[0]["boxes"], torch.tensor([[2.0, 1.0, 6.0, 4.0]]))


def test_squash_bilinear_is_torchvisions_transform():
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    ours = LetterboxTransform(16, [0.5] * 3, [0.5] * 3).eval()
    theirs = GeneralizedRCNNTransform(16, 16, [0.5] * 3, [0.5] * 3, size_divisible=1, fixed_size=(16, 16)).eval()
    image = torch.rand(3, 10, 30, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours([image])[0].tensors, theirs([image])[0].tensors, rtol=0, atol=0)
    with pytest.raises(ValueError, match="resize 'crop'"):
        LetterboxTransform(16, [0.5] * 3, [0.5] * 3, resize="crop")


def test_resizing_as_if_padded_equals_padding_first():
    image = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(2))
    padded = torch.nn.functional.pad(image, (0, 0, 0, 16))  # 53 x 53, zeros at the bottom
    torch.testing.assert_close(tf_legacy_resize_bilinear(image, 16, 16, padded_to=(53, 53)),
                               tf_legacy_resize_bilinear(padded, 16, 16), rtol=0, atol=0)
    with pytest.raises(ValueError, match="smaller than the image"):
        tf_legacy_resize_bilinear(image, 16, 16, padded_to=(20, 53))
