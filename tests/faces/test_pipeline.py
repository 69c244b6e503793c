"""The face pipeline. Synthetic (always run): its plumbing with models built in code, untrained (a MobileNet
0.25 SSD whose equal scores make its anchors the detections; face-api's landmark and descriptor nets), so
shapes, skip counting, unreadable files and the alignment geometry are checked without the package.
Real (skipped, with the reason, without the face-api package): the six demo photos end to end against
face-api itself (tests/data/oracles/faceapi_faces/, run in Node: same faces, boxes, landmarks, crops,
descriptors and attributes), and the bad inputs the issue lists, each built from a demo photo."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mnet_vision.config import compose
from mnet_vision.faces.align import (
    align_similarity,
    faceapi_aligned_box,
    faceapi_clip_box,
    faceapi_detection_box,
    faceapi_face_crop,
    five_points,
)
from mnet_vision.faces.pipeline import MIN_FACE, FacePipeline
from mnet_vision.images import read_rgb
from mnet_vision.index.face_index import FaceIndex, same_model
from mnet_vision.inference.load import LoadedModel, ModelMeta
from mnet_vision.model import build_model
from mnet_vision.pretrained.faceapi_nets import build_faceapi_net
from tests.faces.conftest import DEMO_PHOTOS as PHOTOS
from tests.helpers.faceapi_onnx import faceapi_onnx
from tests.helpers.pretrained import faceapi_package

ORACLE = Path(__file__).resolve().parents[1] / "data" / "oracles" / "faceapi_faces" / "outputs.json"
SYNTHETIC_DETECTIONS = 6


# -- synthetic: models built in code --------------------------------------------------------------------------

def _untrained_net(net: str, task: str, outputs: str, size: int) -> LoadedModel:
    meta = ModelMeta(task=task, outputs=outputs, input_size=size, embedding_dim=128 if net == "descriptor" else None,
                     transform={"kind": "faceapi", "input_size": size})
    return LoadedModel(build_faceapi_net(net).eval(), OmegaConf.create({}), meta, source=f"untrained {net}")


@pytest.fixture(scope="module")
def untrained():
    torch.manual_seed(0)
    cfg = compose(["experiment=faceapi_ssd", "backbone.alpha=0.25",
                   f"task.head.detections_per_img={SYNTHETIC_DETECTIONS}"])
    meta = ModelMeta(task="DetectionTask", input_size=512, class_names=["__background__", "face"], category_ids=[0, 1])
    detector = LoadedModel(build_model(cfg).eval(), cfg, meta, source="untrained ssd")
    return {"detector": detector, "landmarks": _untrained_net("landmarks68", "FaceLandmarks", "landmarks", 112),
            "describer": _untrained_net("descriptor", "FaceDescriptor", "embedding", 150)}


def synthetic_photo() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def test_every_detection_is_a_face_or_a_counted_skip(untrained):
    # the untrained detector scores every anchor 0.5: its detections are anchors, some thinner than min_face
    pipeline = FacePipeline(**untrained, score_thresh=0.4, min_face=20)
    rgb = synthetic_photo()
    boxes, scores = pipeline.detect(rgb)
    assert len(boxes) == SYNTHETIC_DETECTIONS
    result = pipeline.describe_photo(rgb, "synthetic.png")
    assert (result.photo, result.width, result.height) == ("synthetic.png", 320, 240)
    assert len(result.faces) + len(result.skipped) == SYNTHETIC_DETECTIONS
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert len(result.skipped) == int((sides < 20).sum()) > 0 and len(result.faces) > 0
    for skip in result.skipped:
        side = min(skip["box"][2] - skip["box"][0], skip["box"][3] - skip["box"][1])
        assert skip["reason"] == f"face {side:.0f} px < min_face 20 px" and skip["score"] == pytest.approx(0.5)
    for face in result.faces:
        assert face.landmarks.shape == (68, 2) and face.embedding.shape == (128,)
        assert face.embedding.dtype == np.float32 and np.isfinite(face.embedding).all()
        # face-api's geometry: the landmark crop from the detection box, the descriptor crop from the landmarks
        crop_w, crop_h = faceapi_clip_box(faceapi_detection_box(np.array(face.box), 320, 240), 320, 240)[2:]
        box = faceapi_aligned_box(face.landmarks, 320, 240, "dlib", landmark_crop=(crop_w, crop_h))
        np.testing.assert_array_equal(face.aligned, faceapi_face_crop(rgb, box))
        assert face.age is None and face.expression is None


def test_similarity_alignment_feeds_the_describer_template_crops(untrained):
    rgb = synthetic_photo()
    for size in (None, 64):
        pipeline = FacePipeline(**untrained, align="similarity", align_size=size, score_thresh=0.4, min_face=20)
        faces = pipeline.describe_photo(rgb).faces
        assert faces
        side = size or 150  # default: the describer's input size
        for face in faces:
            assert face.aligned.shape == (side, side, 3)
            np.testing.assert_array_equal(face.aligned, align_similarity(rgb, five_points(face.landmarks), side))
        assert pipeline.embedding_model["align"] == f"similarity{side}"


def test_run_files_lists_unreadable_files_and_goes_on(untrained, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(synthetic_photo()).save(good)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    pipeline = FacePipeline(**untrained, score_thresh=0.4, min_face=20, keep_aligned=False)
    photos, unreadable = pipeline.run_files([good, tmp_path / "broken.jpg", tmp_path / "missing.png"], progress=False)
    assert [p.photo for p in photos] == [str(good)]
    assert unreadable == [str(tmp_path / "broken.jpg"), str(tmp_path / "missing.png")]
    assert all(face.aligned is None for face in photos[0].faces)


def test_without_a_describer_there_are_landmarks_and_no_embeddings(untrained):
    pipeline = FacePipeline(untrained["detector"], untrained["landmarks"], describer=None, score_thresh=0.4,
                            min_face=20)
    faces = pipeline.describe_photo(synthetic_photo()).faces
    assert faces and all(face.embedding is None and face.landmarks.shape == (68, 2) for face in faces)
    with pytest.raises(ValueError, match="no describer"):
        _ = pipeline.embedding_model


def test_the_embedding_model_record(untrained):
    record = FacePipeline(**untrained).embedding_model
    assert record == {"name": "untrained descriptor", "sha256": None, "dim": 128, "align": "faceapi",
                      "metric": "euclidean"}


def test_bad_settings_are_refused_naming_them(untrained):
    with pytest.raises(ValueError, match="align='eyes'"):
        FacePipeline(**untrained, align="eyes")
    with pytest.raises(ValueError, match="align_size applies to align='similarity'"):
        FacePipeline(**untrained, align_size=112)
    with pytest.raises(ValueError, match="min_face"):
        FacePipeline(**untrained, min_face=0)
    with pytest.raises(ValueError, match="describer: untrained landmarks68 .* must output 'embedding'"):
        FacePipeline(untrained["detector"], untrained["landmarks"], untrained["landmarks"])
    with pytest.raises(ValueError, match="not a detector"):
        FacePipeline(untrained["landmarks"], untrained["landmarks"], untrained["describer"])
    with pytest.raises(ValueError, match="neither a pretrained model .* nor a checkpoint file"):
        FacePipeline(detector="no_such_model")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        FacePipeline(**untrained).describe_photo(np.zeros((10, 10), np.uint8), "flat.png")


# -- real photos: face-api's package -----------------------------------------------------------------------------

def _oracle() -> dict:
    if not ORACLE.is_file():
        pytest.skip(f"face-api's stored pipeline outputs {ORACLE} are absent: run "
                    "tests/data/oracles/faceapi_faces/make_oracle.py (needs node and npm)")
    return json.loads(ORACLE.read_text())


@pytest.fixture(scope="module")
def demo() -> Path:
    return faceapi_package() / "demo"  # skips, with the reason, where the package cannot be fetched


def _matched(ours, theirs: list[dict]) -> list[tuple]:
    """Our faces paired with face-api's by the nearest box centre (both lists best first)."""
    centres = np.array([[f["box"]["x"] + f["box"]["width"] / 2, f["box"]["y"] + f["box"]["height"] / 2]
                        for f in theirs])
    pairs = []
    for face in ours:
        centre = np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])
        pairs.append((face, theirs[int(np.linalg.norm(centres - centre, axis=1).argmin())]))
    assert len({id(t) for _, t in pairs}) == len(pairs), "two of our faces matched one of face-api's"
    return pairs


def _rgb_sha256(path: Path) -> str:
    return hashlib.sha256(read_rgb(path).tobytes()).hexdigest()


def test_the_demo_photos_end_to_end_equal_faceapi(demo_faces, demo):
    oracle = _oracle()
    diffs = {"landmarks px": 0.0, "descriptor": 0.0, "age years": 0.0, "probabilities": 0.0}
    for name in PHOTOS:
        theirs, ours = oracle["photos"][name]["faces"]["cpu"], demo_faces[name]
        if _rgb_sha256(demo / f"{name}.jpg") != oracle["photos"][name]["rgb_sha256"]:
            pytest.skip(f"this Pillow decodes {name}.jpg to other RGB bytes than the oracle was run on")
        assert (ours.width, ours.height) == (oracle["photos"][name]["width"], oracle["photos"][name]["height"])
        assert len(ours.faces) == len(theirs) and ours.skipped == [], name
        for face, their in _matched(ours.faces, theirs):
            assert face.score == pytest.approx(their["score"], abs=1e-4)
            assert face.aligned.shape[:2] == (their["descriptor_box"]["height"], their["descriptor_box"]["width"])
            diffs["landmarks px"] = max(diffs["landmarks px"], float(np.abs(face.landmarks - their["landmarks"]).max()))
            diffs["descriptor"] = max(diffs["descriptor"], float(np.abs(face.embedding - their["descriptor"]).max()))
            diffs["age years"] = max(diffs["age years"], abs(face.age["years"] - their["age"]))
            probabilities = [*face.expression.values(), face.gender[their["gender"]]]
            expected = [*their["expressions"], their["gender_probability"]]
            diffs["probabilities"] = max(diffs["probabilities"], float(np.abs(np.subtract(probabilities,
                                                                                          expected)).max()))
    # the bars for the nets alone; end to end the crops must be face-api's to the pixel to meet them
    assert diffs["landmarks px"] <= 0.01, diffs
    assert diffs["descriptor"] <= 1e-4, diffs
    assert diffs["age years"] <= 0.01 and diffs["probabilities"] <= 1e-5, diffs


def test_faceapis_box_arithmetic_on_its_own_outputs():
    # given face-api's own detections and landmarks, our functions give face-api's crops exactly (integers)
    oracle = _oracle()
    count = 0
    for name in PHOTOS:
        photo = oracle["photos"][name]
        width, height = photo["width"], photo["height"]
        for face in photo["faces"]["cpu"]:
            box = tuple(face["box"][k] for k in ("x", "y", "width", "height"))
            crop = faceapi_clip_box(box, width, height)
            assert crop[2:] == (face["landmark_crop"]["width"], face["landmark_crop"]["height"])
            np.testing.assert_allclose(np.add(face["unshifted_landmarks"], box[:2]), face["landmarks"], atol=1e-9)
            dlib = tuple(face["descriptor_box"][k] for k in ("x", "y", "width", "height"))
            assert faceapi_aligned_box(np.array(face["landmarks"]), width, height, "dlib",
                                       landmark_crop=crop[2:]) == faceapi_clip_box(dlib, width, height)
            rect = tuple(face["aligned_rect"][k] for k in ("x", "y", "width", "height"))
            assert faceapi_aligned_box(np.array(face["landmarks"]), width, height, "min_bbox") == \
                faceapi_clip_box(rect, width, height)
            count += 1
    assert count == 22


def test_a_photo_with_no_face_gives_no_faces(faceapi_pipeline, demo):
    below_the_faces = np.ascontiguousarray(read_rgb(demo / "sample1.jpg")[800:])  # bodies and the floor
    result = faceapi_pipeline.describe_photo(below_the_faces, "sample1 below the faces")
    assert result.faces == [] and result.skipped == []
    assert (result.width, result.height) == (1920, 480)


def test_a_face_cut_by_the_border_is_described_with_padding(faceapi_pipeline, demo):
    # sample1 cut at x = 460, through its left face (x 414..591): half of that face is outside the photo
    cut = np.ascontiguousarray(read_rgb(demo / "sample1.jpg")[:, 460:])
    result = faceapi_pipeline.describe_photo(cut, "sample1 cut")
    at_border = [face for face in result.faces if face.box[0] < 5]
    assert len(at_border) == 1 and result.skipped == []
    face = at_border[0]
    assert face.landmarks[:, 0].min() < -20  # its landmarks run past the photo's left edge
    assert face.embedding.shape == (128,) and np.isfinite(face.embedding).all()
    assert face.aligned.shape[1] < face.aligned.shape[0]  # face-api's crop is clipped; its net pads it square
    points = five_points(face.landmarks)
    similarity = align_similarity(cut, points, 112)
    assert (similarity == 0).all(axis=-1).mean() > 0.2  # the part outside the photo is black


def test_faces_below_min_face_are_skipped_and_counted(faceapi_pipeline, demo):
    # sample1 at a tenth of its size: its three faces are 18-21 px, under MIN_FACE
    small = np.asarray(Image.open(demo / "sample1.jpg").convert("RGB").resize((192, 128), Image.BILINEAR))
    result = faceapi_pipeline.describe_photo(small, "sample1 small")
    assert result.faces == [] and len(result.skipped) == 3
    for skip in result.skipped:
        side = min(skip["box"][2] - skip["box"][0], skip["box"][3] - skip["box"][1])
        assert side < MIN_FACE and skip["reason"] == f"face {side:.0f} px < min_face {MIN_FACE} px"
        assert skip["score"] > 0.9


def _same_faces(photo, reference, box_px: float, distance: float) -> None:
    assert len(photo.faces) == len(reference.faces)
    for face, ref in zip(photo.faces, reference.faces, strict=True):
        assert np.abs(np.subtract(face.box, ref.box)).max() <= box_px
        assert np.linalg.norm(face.embedding - ref.embedding) <= distance


def test_grey_and_cmyk_photos_give_the_same_people(faceapi_pipeline, demo, tmp_path):
    colour = Image.open(demo / "sample1.jpg")
    colour.convert("L").save(tmp_path / "grey.jpg", quality=95)
    colour.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    (reference, grey, cmyk), unreadable = faceapi_pipeline.run_files(
        [demo / "sample1.jpg", tmp_path / "grey.jpg", tmp_path / "cmyk.jpg"], progress=False)
    assert unreadable == [] and (grey.width, grey.height) == (cmyk.width, cmyk.height) == (1920, 1280)
    # measured: grey boxes within 9.1 px and descriptors 0.18-0.25 from the colour ones (the same person
    # under 0.6); CMYK (re-encoded) within 0.5 px and 0.05-0.09
    _same_faces(grey, reference, box_px=15, distance=0.35)
    _same_faces(cmyk, reference, box_px=2, distance=0.15)


@pytest.mark.parametrize("orientation, stored_as", [(6, Image.Transpose.ROTATE_90), (3, Image.Transpose.ROTATE_180)])
def test_an_exif_rotated_photo_gives_the_upright_ones_boxes(faceapi_pipeline, demo, tmp_path, orientation, stored_as):
    # a camera's way: the pixels turned and the Orientation tag saying how to turn them back; compared with
    # the upright photo saved the same way (both re-encoded at quality 95)
    upright = Image.open(demo / "sample1.jpg")
    upright.save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(stored_as).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    (straight, rotated), _ = faceapi_pipeline.run_files([tmp_path / "upright.jpg", tmp_path / "rotated.jpg"],
                                                        progress=False)
    assert (rotated.width, rotated.height) == (1920, 1280)
    _same_faces(rotated, straight, box_px=1.0, distance=0.1)  # measured: 0.54 px, 0.01-0.07


def test_an_onnx_detector_gives_the_pytorch_detectors_faces(faceapi_pipeline, demo):
    # face-api's detector exported (the TorchScript exporter: seconds, where dynamo takes a minute; the export
    # checks itself against PyTorch) and run by ONNX Runtime: the same crops, so the same descriptors
    onnx = FacePipeline(detector=faceapi_onnx("faceapi_ssd").path, attributes=False)
    rgb = read_rgb(demo / "sample1.jpg")
    ours, theirs = faceapi_pipeline.describe_photo(rgb), onnx.describe_photo(rgb)
    assert len(theirs.faces) == len(ours.faces) == 3
    for a, b in zip(theirs.faces, ours.faces, strict=True):
        assert np.abs(np.subtract(a.box, b.box)).max() < 1e-2 and a.aligned.shape == b.aligned.shape
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)
    assert onnx.embedding_model == faceapi_pipeline.embedding_model


def test_every_net_in_onnx_runtime_gives_the_pytorch_pipelines_faces(faceapi_pipeline, demo_faces, demo):
    # detector, landmarks, descriptor, age/gender and expressions all exported and run by ONNX Runtime, fed by the
    # same face-api input pipeline: the PyTorch path's faces on two demo photos (7 faces)
    attributes = {name: faceapi_onnx(f"faceapi_{name}").path for name in ("age_gender", "expression")}
    onnx = FacePipeline(detector=faceapi_onnx("faceapi_ssd").path, landmarks=faceapi_onnx("faceapi_landmarks68").path,
                        describer=faceapi_onnx("faceapi_descriptor").path, attributes=attributes)
    photos, _ = onnx.run_files([demo / f"{name}.jpg" for name in ("sample1", "sample2")], progress=False)
    for photo in photos:
        ours = demo_faces[Path(photo.photo).stem]
        assert len(photo.faces) == len(ours.faces) > 0
        for a, b in zip(photo.faces, ours.faces, strict=True):
            assert np.abs(np.subtract(a.box, b.box)).max() < 1e-2 and a.aligned.shape == b.aligned.shape
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)  # pixels
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)
            assert abs(a.age["years"] - b.age["years"]) < 1e-2
            for mine, theirs in ((a.gender, b.gender), (a.expression, b.expression)):
                assert mine.keys() == theirs.keys()
                np.testing.assert_allclose(list(mine.values()), list(theirs.values()), atol=1e-4)
    # the same weights within 1e-4, so one index takes both paths' vectors; the record names the ONNX file too
    ours_model, onnx_model = faceapi_pipeline.embedding_model, onnx.embedding_model
    assert same_model(onnx_model, ours_model) and onnx_model["name"] == "faceapi_descriptor"
    assert onnx_model["runtime"] == "onnxruntime" and onnx_model["file"].endswith("faceapi_descriptor.onnx")
    assert onnx_model["file_sha256"] == hashlib.sha256(Path(onnx_model["file"]).read_bytes()).hexdigest()
    index = FaceIndex.create(128, "auto", expected_size=8, metric="euclidean", embedding_model=ours_model)
    index.add(np.stack([f.embedding for f in photos[0].faces]), ["a"] * len(photos[0].faces),
              embedding_model=onnx_model)
    assert len(index) == len(photos[0].faces)


def test_one_of_our_embedding_checkpoints_describes_similarity_aligned_faces(untrained, embedding_run):
    # the tiny triplet run's MobileNet embedder (16-D, 32x32 input) as the describer: the template crops at
    # its input size, its own evaluation transform, unit embeddings compared by cosine
    ckpt = Path(embedding_run["best_checkpoint"])
    pipeline = FacePipeline(untrained["detector"], untrained["landmarks"], ckpt, align="similarity", score_thresh=0.4,
                            min_face=20)
    faces = pipeline.describe_photo(synthetic_photo()).faces
    assert faces and all(face.aligned.shape == (32, 32, 3) for face in faces)
    assert all(face.embedding.shape == (16,) and abs(np.linalg.norm(face.embedding) - 1) < 1e-4 for face in faces)
    assert pipeline.embedding_model == {"name": str(ckpt), "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
                                        "dim": 16, "align": "similarity32", "metric": "cosine"}
