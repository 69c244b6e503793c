"""The tools' ONNX Runtime backend: a trained checkpoint's .onnx export (export_onnx) gives what the
checkpoint gives through detect_files, build_index / search_index and geolocate_files, and the
pretrained face detector's export finds the same faces on a demo photo."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hydra.utils import instantiate

from mnet_vision.deploy.metadata import SOURCE_KEY, read_exported, set_metadata
from mnet_vision.deploy.runtime import load_onnx
from mnet_vision.images import read_rgb
from mnet_vision.inference.detect import detect_files, load_detector
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.export import export_onnx
from mnet_vision.inference.geolocate import geolocate_files
from mnet_vision.inference.onnx_backend import onnx_evaluation
from mnet_vision.inference.search import build_index, search_index
from mnet_vision.pretrained.models import load_pretrained
from mnet_vision.training import evaluate
from mnet_vision.training.run import task_from_checkpoint
from tests.helpers.cli import run_tool
from tests.helpers.pretrained import faceapi_package

pytest.importorskip("onnxruntime", reason="the deploy path runs on onnxruntime (pip install mnet_vision[deploy])")


# The session runs' exports come from tests/inference/conftest.py's run_export, made once and shared.


def test_detect_files_from_the_onnx_equals_the_checkpoint(detection_run, run_export, tmp_path):
    ckpt = detection_run["best_checkpoint"]
    images = Path(detection_run["run_dir"]).parent / "data" / "val2017"
    onnx_path = run_export(detection_run)
    theirs = detect_files(ckpt, images, tmp_path / "ckpt", score_thresh=0.0, draw=False, fast=False)
    ours = detect_files(onnx_path, images, tmp_path / "onnx", score_thresh=0.0, draw=False)
    assert ours["images"] == theirs["images"] > 0 and ours["detections"] == theirs["detections"] > 0
    a = json.loads(Path(ours["json"]).read_text())
    b = json.loads(Path(theirs["json"]).read_text())
    for x, y in zip(a, b):
        assert (x["file"], x["width"], x["height"]) == (y["file"], y["width"], y["height"])
        assert [d["label"] for d in x["detections"]] == [d["label"] for d in y["detections"]]
        # the JSON rounds boxes to 0.01 px and scores to 1e-4: one rounding step apart at most
        np.testing.assert_allclose([d["box_xyxy"] for d in x["detections"]], [d["box_xyxy"] for d in y["detections"]],
                                   rtol=0, atol=0.01 + 1e-3)
        np.testing.assert_allclose([d["score"] for d in x["detections"]], [d["score"] for d in y["detections"]],
                                   rtol=0, atol=1e-4 + 1e-6)
    # unrounded: boxes within 1e-3 px, scores within 1e-4
    model, plain = load_onnx(onnx_path, threads=1), load_detector(ckpt, fast=False).model
    arrays = [read_rgb(p) for p in sorted(images.glob("*.png"))[:4]]
    with torch.no_grad():
        expected = plain([torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float() / 255 for a in arrays])
    for got, want in zip(model.detect(arrays), expected):
        assert len(got["scores"]) == len(want["scores"])
        np.testing.assert_array_equal(got["labels"], want["labels"].numpy())
        np.testing.assert_allclose(got["boxes"], want["boxes"].numpy(), rtol=0, atol=1e-3)
        np.testing.assert_allclose(got["scores"], want["scores"].numpy(), rtol=0, atol=1e-4)


def test_detect_files_refuses_an_onnx_of_another_task(embedding_run, run_export, tmp_path):
    onnx_path = run_export(embedding_run)
    image = next((Path(embedding_run["run_dir"]).parent / "data" / "test").rglob("*.png"))
    with pytest.raises(ValueError, match="is a EmbeddingTask model, expected a DetectionTask model"):
        detect_files(onnx_path, image, tmp_path / "out")


def test_index_and_search_from_the_onnx_equal_the_checkpoint(embedding_run, run_export, tmp_path):
    ckpt = embedding_run["best_checkpoint"]
    gallery = Path(embedding_run["run_dir"]).parent / "data" / "test"
    onnx_path = run_export(embedding_run)
    files = sorted(gallery.rglob("*.png"))
    ours = Embedder(onnx_path).embed_files(files, progress=False)
    theirs = Embedder(ckpt, fast=False).embed_files(files, progress=False)
    assert ours.paths == theirs.paths and ours.embeddings.shape == theirs.embeddings.shape
    np.testing.assert_allclose(ours.embeddings, theirs.embeddings, rtol=0, atol=1e-4)
    for model, name in ((onnx_path, "onnx"), (ckpt, "ckpt")):
        summary = build_index(model, gallery, tmp_path / f"{name}.faiss", fast=False)
        assert summary["added"] == len(files)
    query = files[0].parent
    found = {name: search_index(tmp_path / f"{name}.faiss", query, model, k=3, fast=False)
             for model, name in ((onnx_path, "onnx"), (ckpt, "ckpt"))}
    # the tiny model's embeddings are nearly collinear (cosines of 0.9999 and above), so matches tie within
    # 1e-4 and either index may list them in another order: ours must be a top k under the checkpoint's
    # own embeddings, within 1e-4, with the same scores
    gallery_rows = {str(p): i for i, p in enumerate(theirs.paths)}
    for a, b in zip(found["onnx"], found["ckpt"]):
        np.testing.assert_allclose([m["score"] for m in a["matches"]], [m["score"] for m in b["matches"]],
                                   rtol=0, atol=1e-4 + 1e-6)
        cosines = theirs.embeddings @ theirs.embeddings[gallery_rows[a["query"]]]
        kth = np.sort(cosines)[::-1][len(b["matches"]) - 1]
        assert all(cosines[gallery_rows[m["source"]]] >= kth - 1e-4 for m in a["matches"])
        # itself first, or a gallery face that ties it within 1e-4 in float32 (on an AMD EPYC another face
        # came first in both indexes, at a cosine to the query of 1 - 1e-5)
        assert all(cosines[gallery_rows[r["matches"][0]["source"]]] >= 1 - 1e-4 for r in (a, b))


@pytest.mark.parametrize("crops", [1, 5])
def test_geolocate_files_from_the_onnx_equals_the_checkpoint(geo_run, run_export, tmp_path, crops):
    ckpt = geo_run["best_checkpoint"]
    csv = Path(geo_run["run_dir"]).parent / "data" / "test.csv"
    onnx_path = run_export(geo_run)
    ours = geolocate_files(onnx_path, csv, tmp_path / "onnx", top_k=3, crops=crops)
    theirs = geolocate_files(ckpt, csv, tmp_path / "ckpt", top_k=3, crops=crops, fast=False)
    assert ours["photos"] == theirs["photos"] > 0 and ours["accuracy"] == theirs["accuracy"]
    a = json.loads(Path(ours["json"]).read_text())
    b = json.loads(Path(theirs["json"]).read_text())
    for x, y in zip(a, b):
        assert [(c["class"], c["token"], c["lat"], c["lon"]) for c in x["cells"]] == \
               [(c["class"], c["token"], c["lat"], c["lon"]) for c in y["cells"]]
        np.testing.assert_allclose([c["probability"] for c in x["cells"]], [c["probability"] for c in y["cells"]],
                                   rtol=0, atol=1e-4)


def test_geolocate_checks_partition_files_against_the_onnx(geo_run, run_export, tmp_path):
    data = Path(geo_run["run_dir"]).parent / "data"
    onnx_path = run_export(geo_run)
    coarse, fine = str(data / "cells" / "cells_3_80.csv"), str(data / "cells" / "cells_3_25.csv")
    image = data / "test" / "000000.png"
    assert geolocate_files(onnx_path, image, tmp_path / "ok", partitions=[coarse, fine], draw=True)["photos"] == 1
    assert (tmp_path / "ok" / "000000.png.png").stat().st_size > 10_000  # the map of the export's own cells
    with pytest.raises(ValueError, match=r"has 2 partition\(s\) but 1 partition file\(s\) were given"):
        geolocate_files(onnx_path, image, tmp_path / "one", partitions=[coarse])
    with pytest.raises(ValueError, match=f"{fine} is not the partition .*model.onnx was exported with"):
        geolocate_files(onnx_path, image, tmp_path / "swapped", partitions=[fine, coarse])


def test_the_pretrained_face_detector_through_onnx_finds_the_pytorch_faces(tmp_path):
    photo = faceapi_package() / "demo" / "sample1.jpg"
    loaded = load_pretrained("faceapi_ssd", fast=False)
    loaded.model.requires_grad_(False)
    # the TorchScript exporter: seconds, where dynamo takes tens of them (test_export.py tests dynamo's)
    onnx_path = export_onnx(loaded, tmp_path / "faceapi_ssd.onnx", dynamo=False).path
    image = read_rgb(photo)
    with torch.no_grad():
        (want,) = loaded.model([torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255])
    (got,) = load_onnx(onnx_path).detect([image])
    confident = want["scores"].numpy() >= 0.5
    assert confident.sum() > 0
    assert len(got["scores"]) == len(want["scores"])
    np.testing.assert_array_equal(got["labels"], want["labels"].numpy())
    np.testing.assert_allclose(got["boxes"], want["boxes"].numpy(), rtol=0, atol=1e-3)
    np.testing.assert_allclose(got["scores"], want["scores"].numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="was exported from pretrained:faceapi_ssd: scoring an export needs the "
                                         "training checkpoint"):
        onnx_evaluation(onnx_path)


@pytest.mark.parametrize("run", ["detection_run", "geo_run"])
def test_evaluating_the_onnx_gives_the_checkpoints_metrics(run, request, run_export, tmp_path):
    trained = request.getfixturevalue(run)
    ckpt, onnx_path = trained["best_checkpoint"], run_export(trained)
    source, wrap = onnx_evaluation(onnx_path)
    assert source == str(ckpt)
    ours = evaluate(source, "test", out_dir=tmp_path / "onnx", wrap_model=wrap)
    theirs = evaluate(ckpt, "test", out_dir=tmp_path / "ckpt")
    metrics = {k: v for k, v in theirs.items() if k != "out_dir"}
    assert metrics and set(metrics) == {k for k in ours if k != "out_dir"}
    for key, value in metrics.items():
        assert ours[key] == pytest.approx(value, abs=1e-4), key
    if run == "detection_run":  # the tiny detector's AP may be 0 either way: the detections scored are the same
        a, b = (json.loads((tmp_path / side / "detections_test.json").read_text()) for side in ("onnx", "ckpt"))
        assert len(a) == len(b) > 0
        assert [(d["image_id"], d["category_id"]) for d in a] == [(d["image_id"], d["category_id"]) for d in b]
        # COCO results round boxes to 1e-3 px
        np.testing.assert_allclose([d["bbox"] for d in a], [d["bbox"] for d in b], rtol=0, atol=1e-3 + 1e-3)
        np.testing.assert_allclose([d["score"] for d in a], [d["score"] for d in b], rtol=0, atol=1e-4)


@pytest.mark.parametrize("run", ["embedding_run", "attribute_run"])
def test_evaluating_the_onnx_feeds_the_metrics_the_checkpoints_outputs(run, request, run_export, tmp_path):
    # The tiny attribute and triplet runs' outputs barely differ between images (logits spread by 3e-7 to
    # 1e-6, embeddings' cosines all within 4e-6 of 1): their ranking metrics (mean AP, AUC) are float noise,
    # which moves by 1e-3 even between the PyTorch model and its own BN-folded copy. So these check what
    # the metrics are computed from, batch by batch, and that the evaluation runs through with its metrics.
    trained = request.getfixturevalue(run)
    ckpt = trained["best_checkpoint"]
    source, wrap = onnx_evaluation(run_export(trained))
    cfg, task, _ = task_from_checkpoint(source)
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("test")
    network = wrap(task.model.eval())
    for batch in data.test_dataloader():
        with torch.no_grad():
            torch.testing.assert_close(network(batch["image"]), task.model(batch["image"]), rtol=0, atol=1e-4)
    ours = evaluate(source, "test", out_dir=tmp_path / "onnx", wrap_model=wrap)
    theirs = evaluate(ckpt, "test", out_dir=tmp_path / "ckpt")
    assert set(ours) == set(theirs) and all(np.isfinite(v) for k, v in ours.items() if k.endswith(("auc", "mean_ap")))


def test_eval_tool_takes_an_onnx(detection_run, run_export, tmp_path):
    onnx_path = run_export(detection_run)
    out = run_tool("eval.py", f"ckpt={onnx_path}", f"out_dir={tmp_path / 'eval'}", f"output={tmp_path / 'm.json'}")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["test/AP"] == pytest.approx(detection_run["test/AP"], abs=1e-4)
    assert "AP" in out.stdout and (tmp_path / "eval" / "detections_test.json").is_file()


def test_evaluating_an_onnx_without_its_checkpoint_is_named(attribute_run, run_export, tmp_path):
    onnx_path = run_export(attribute_run)
    moved = tmp_path / "elsewhere.onnx"
    proto = onnx.load(str(onnx_path))
    source = read_exported(onnx_path).source
    onnx.save(set_metadata(proto, {SOURCE_KEY: {**source, "checkpoint": str(tmp_path / "gone.ckpt")}}), moved)
    with pytest.raises(FileNotFoundError, match="exported from the checkpoint .*gone.ckpt .*which is not found here"):
        onnx_evaluation(moved)


def test_detect_tool_takes_an_onnx(detection_run, run_export, tmp_path):
    ckpt = detection_run["best_checkpoint"]
    images = Path(detection_run["run_dir"]).parent / "data" / "val2017"
    onnx_path = run_export(detection_run)
    out = run_tool("detect.py", f"ckpt={onnx_path}", f"input={images}", f"out={tmp_path / 'onnx'}", "score=0.0",
                   "draw=false")
    theirs = detect_files(ckpt, images, tmp_path / "ckpt", score_thresh=0.0, draw=False, fast=False)
    assert f"{theirs['detections']} detections in {theirs['images']} images" in out.stdout
    a = json.loads((tmp_path / "onnx" / "detections.json").read_text())
    b = json.loads(Path(theirs["json"]).read_text())
    assert [[d["label"] for d in e["detections"]] for e in a] == [[d["label"] for d in e["detections"]] for e in b]
