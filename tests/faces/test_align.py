"""Alignment geometry on cases known by construction: the 5 points, the Umeyama fit (a known similarity
recovered; arbitrary points against a plain linear least-squares solve), warping an image and aligning it
back, faces outside the image, and face-api's box arithmetic worked by hand (its real-photo equality with
face-api's own boxes is tests/faces/test_pipeline.py's)."""
import math

import cv2
import numpy as np
import pytest

from mnet_vision.faces.align import (
    ARCFACE_112,
    align_similarity,
    arcface_template,
    faceapi_aligned_box,
    faceapi_clip_box,
    faceapi_detection_box,
    faceapi_face_crop,
    five_points,
    similarity_transform,
)


def similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_five_points_are_eye_centres_nose_tip_and_mouth_corners():
    landmarks = np.arange(136, dtype=np.float64).reshape(68, 2)
    points = five_points(landmarks)
    assert points.shape == (5, 2)
    np.testing.assert_allclose(points[0], landmarks[36:42].mean(axis=0))
    np.testing.assert_allclose(points[1], landmarks[42:48].mean(axis=0))
    np.testing.assert_array_equal(points[2:], landmarks[[30, 48, 54]])
    batch = five_points(np.stack([landmarks, landmarks + 1]))
    assert batch.shape == (2, 5, 2)
    np.testing.assert_allclose(batch[1], points + 1)
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        five_points(np.zeros((5, 2)))


def test_the_arcface_template_is_insightfaces_and_scales_with_the_size():
    assert ARCFACE_112[0].tolist() == [38.2946, 51.6963] and ARCFACE_112[4].tolist() == [70.7299, 92.2041]
    np.testing.assert_allclose(arcface_template(224), ARCFACE_112 * 2)
    with pytest.raises(ValueError, match="alignment size"):
        arcface_template(4)


@pytest.mark.parametrize("angle, scale, tx, ty", [(0.0, 1.0, 0.0, 0.0), (0.3, 1.7, -12.5, 40.0),
                                                  (-2.5, 0.25, 300.0, -7.0), (math.pi, 3.0, 1.0, 2.0)])
def test_a_known_similarity_is_recovered(angle, scale, tx, ty):
    truth = similarity(angle, scale, tx, ty)
    found = similarity_transform(ARCFACE_112, apply(truth, ARCFACE_112))
    np.testing.assert_allclose(found, truth, atol=1e-6)


def test_the_fit_is_linear_least_squares_on_arbitrary_points():
    # x' = a x - b y + tx, y' = b x + a y + ty is linear in (a, b, tx, ty): numpy's lstsq is the reference
    rng = np.random.default_rng(0)
    for _ in range(5):
        src = rng.uniform(0, 200, (7, 2))
        dst = apply(similarity(rng.uniform(-3, 3), rng.uniform(0.2, 4), *rng.uniform(-50, 50, 2)), src)
        dst += rng.normal(0, 3, dst.shape)
        rows = np.zeros((14, 4))
        rows[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(7), np.zeros(7)])
        rows[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(7), np.ones(7)])
        a, b, tx, ty = np.linalg.lstsq(rows, dst.ravel(), rcond=None)[0]
        np.testing.assert_allclose(similarity_transform(src, dst), [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_mirrored_points_give_a_rotation_not_a_reflection():
    mirrored = ARCFACE_112 * [-1, 1]
    matrix = similarity_transform(ARCFACE_112, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_degenerate_points_are_refused():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), ARCFACE_112)
    with pytest.raises(ValueError, match="NaN"):
        similarity_transform(np.full((5, 2), np.nan), ARCFACE_112)
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        similarity_transform(np.ones((5, 3)), ARCFACE_112)


def smooth_face(size: int = 112) -> np.ndarray:
    """A smooth (interpolation-friendly) 3-channel pattern standing for an aligned face."""
    y, x = np.mgrid[0:size, 0:size] / size
    return (np.stack([np.sin(6 * x) + 1, np.cos(5 * y) + 1, np.sin(4 * (x + y)) + 1], axis=-1) * 127).astype(np.uint8)


def test_an_image_warped_into_a_photo_is_aligned_back():
    face = smooth_face()
    photo_from_face = similarity(0.4, 1.8, 150.0, 60.0)  # where the face lies in a 400x300 photo
    photo = cv2.warpAffine(face, photo_from_face, (400, 300), flags=cv2.INTER_LINEAR)
    points = apply(photo_from_face, ARCFACE_112)
    back = align_similarity(photo, points, 112)
    assert back.shape == (112, 112, 3) and back.dtype == np.uint8
    inner = (slice(8, -8), slice(8, -8))  # the rim mixes in the black around the warped face
    assert np.abs(back[inner].astype(int) - face[inner]).mean() < 2.0
    # the template at another size: the same face, resampled
    assert align_similarity(photo, points, 224).shape == (224, 224, 3)


def test_a_face_outside_the_image_gives_black_padding_not_an_error():
    photo = np.full((100, 100, 3), 200, np.uint8)
    half_out = ARCFACE_112 - [60, 0]  # crop (u, v) <- photo (u - 60, v): its left 60 columns are left of the photo
    crop = align_similarity(photo, half_out, 112)
    assert crop.shape == (112, 112, 3)
    assert crop[:, :59].max() == 0 and crop[:99, 61:].min() == 200 and crop[101:].max() == 0
    gone = align_similarity(photo, ARCFACE_112 + 5000, 112)  # wholly outside
    assert gone.max() == 0


def test_faceapi_detection_box_undoes_our_exact_scale_with_faceapis_rounding():
    # sample1 is 1920x1280: face-api's reshaped 512x341 (round(1280 * 512 / 1920) = 341.33 -> 341), so its
    # y scale is 512 * 1280 / (341 * 1920) of ours; x is the long side, unchanged
    x, y, w, h = faceapi_detection_box(np.array([100.0, 200.0, 300.0, 500.0]), 1920, 1280)
    sy = 512 * 1280 / (341 * 1920)
    assert (x, w) == (100.0, 200.0)
    assert y == pytest.approx(200 * sy, rel=1e-12) and h == pytest.approx(300 * sy, rel=1e-12)


def test_faceapi_clip_box_clamps_cuts_and_floors():
    assert faceapi_clip_box((10.7, 20.2, 30.9, 40.5), 100, 100) == (10, 20, 30, 40)  # floor(41.6 - 10.7) = 30
    assert faceapi_clip_box((-5.5, -2.0, 30.0, 10.0), 100, 100) == (0, 0, 24, 8)  # width from the clamped x
    assert faceapi_clip_box((90.0, 95.0, 30.0, 30.0), 100, 100) == (90, 95, 10, 5)
    x, y, w, h = faceapi_clip_box((120.0, 10.0, 30.0, 30.0), 100, 100)
    assert w <= 0  # wholly outside: face-api cuts nothing


def dlib_landmarks() -> np.ndarray:
    """Eyes centred at (40, 50) and (80, 50), mouth centred at (60, 95): eye-to-mouth 49.24 px."""
    points = np.zeros((68, 2))
    points[36:42], points[42:48], points[48:68] = (40, 50), (80, 50), (60, 95)
    points[:36] = (60, 70)
    return points


def test_faceapi_dlib_box_by_hand():
    # size = floor(49.244 / 0.45) = 109; the centres' mean (60, 65); x = floor(60 - 54.5) = 5,
    # y = floor(65 - 0.43 * 109) = floor(18.13) = 18
    assert faceapi_aligned_box(dlib_landmarks(), 640, 480) == (5, 18, 109, 109)
    # face-api caps the side at the landmark crop's width + x: a quirk it has
    assert faceapi_aligned_box(dlib_landmarks(), 640, 480, landmark_crop=(100, 200)) == (5, 18, 105, 109)
    # clipped at the image like any face-api crop
    assert faceapi_aligned_box(dlib_landmarks(), 100, 100) == (5, 18, 95, 82)
    # near the top-left corner its x and y are clamped at 0
    assert faceapi_aligned_box(dlib_landmarks() - 40, 640, 480)[:2] == (0, 0)


def test_faceapi_min_bbox_by_hand():
    # points span x 40..80, y 50..95: 40 x 45, padded by 0.2 of each side: (36, 45.5, 48, 54) -> floored
    assert faceapi_aligned_box(dlib_landmarks(), 640, 480, "min_bbox") == (36, 45, 48, 54)
    with pytest.raises(ValueError, match="unknown face-api alignment"):
        faceapi_aligned_box(dlib_landmarks(), 640, 480, "eyes")


def test_faceapi_face_crop_slices_and_refuses_boxes_outside():
    photo = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    np.testing.assert_array_equal(faceapi_face_crop(photo, (3, 4, 10, 5)), photo[4:9, 3:13])
    for box in [(0, 0, 0, 5), (25, 0, 10, 5), (-1, 0, 4, 4)]:
        with pytest.raises(ValueError, match="not a non-empty box inside the 30x20 image"):
            faceapi_face_crop(photo, box)
