"""The one inference loader: no Lightning, metadata in one checkpoint entry (old checkpoints still
load), the DataModule's evaluation transform without a DataModule."""
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import mnet_vision.inference
from mnet_vision.checkpoints import META_KEY, atomic_save, load_file
from mnet_vision.config import compose
from mnet_vision.data.coco import CocoDetectionDataModule
from mnet_vision.data.transforms import apply_seeded
from mnet_vision.images import read_rgb
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.geolocate import Geolocator
from mnet_vision.inference.load import eval_transform, load_model
from mnet_vision.model import DetectorModel

REPO = Path(__file__).resolve().parents[2]


def test_importing_every_inference_module_and_running_a_detector_imports_no_lightning(detection_run, tmp_path):
    """In a fresh interpreter (other tests' imports would hide a Lightning import here), one for both
    checks: importing every inference module imports no Lightning, and neither does loading and running
    a detector after them, nor mnet_vision.tasks (the stored-config check reads the task's and data's
    targets by name only: loading a model must not import the training stack through them)."""
    modules = sorted(f"mnet_vision.inference.{m.name}" for m in pkgutil.iter_modules(mnet_vision.inference.__path__))
    assert {f"mnet_vision.inference.{m}" for m in ("load", "detect", "embed", "search")} <= set(modules)
    code = ("import importlib, sys\n"
            f"for name in ['mnet_vision.inference', *{modules!r}]:\n"
            "    importlib.import_module(name)\n"
            "    assert 'lightning' not in sys.modules, name\n"
            "from mnet_vision.inference.detect import detect_files\n"
            f"detect_files({detection_run['best_checkpoint']!r}, {str(_one_image(detection_run, tmp_path))!r}, "
            f"{str(tmp_path / 'out')!r}, draw=False)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'lightning' or m.startswith('mnet_vision.tasks')]\n"
            "assert not bad, bad[:5]\n"
            "print('clean')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0 and "clean" in run.stdout, run.stderr[-2000:]


def _one_image(detection_run, tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    source = sorted((Path(detection_run["run_dir"]).parent / "data" / "val2017").glob("*.png"))[0]
    (folder / source.name).write_bytes(source.read_bytes())
    return folder


def test_a_new_checkpoint_carries_its_metadata_in_one_entry(detection_run):
    checkpoint = load_file(detection_run["best_checkpoint"])
    assert "mnet_classes" not in checkpoint
    meta = checkpoint[META_KEY]
    assert meta["task"] == "DetectionTask" and meta["outputs"] is None
    assert meta["class_names"][:2] == ["__background__", "circle"] and meta["category_ids"][:2] == [0, 1]
    assert meta["transform"] == {"kind": "detection"}
    assert meta["input_size"] == stored_config(detection_run["best_checkpoint"])["task"]["input_size"]
    loaded = load_model(detection_run["best_checkpoint"])
    assert isinstance(loaded.model, DetectorModel) and not loaded.model.training and loaded.fast
    assert loaded.meta.as_dict() == meta


@pytest.mark.parametrize("run, outputs", [("embedding_run", "embedding"), ("attribute_run", "logits")])
def test_metadata_of_other_tasks(request, run, outputs):
    result = request.getfixturevalue(run)
    meta = load_model(result["best_checkpoint"], fast=False).meta
    cfg = stored_config(result["best_checkpoint"])
    assert meta.outputs == outputs and meta.input_size == cfg["task"]["input_size"]
    assert meta.transform["kind"] == "classification" and meta.transform["input_size"] == meta.input_size
    if outputs == "embedding":
        assert meta.embedding_dim == cfg["task"]["embedding_dim"]


def stored_config(ckpt):
    """The checkpoint's run config, resolved."""
    return OmegaConf.to_container(OmegaConf.create(load_file(ckpt)["mnet_config"]), resolve=True)


def test_checkpoints_from_before_the_metadata_entry_still_load(detection_run, embedding_run, tmp_path):
    new = load_file(detection_run["best_checkpoint"])
    meta = new.pop(META_KEY)
    old = tmp_path / "old.ckpt"
    atomic_save({**new, "mnet_classes": {"names": meta["class_names"], "category_ids": meta["category_ids"]}}, old)
    assert load_model(old).meta.as_dict() == meta
    atomic_save(new, tmp_path / "nameless.ckpt")  # saved before training began: generic names
    names = load_model(tmp_path / "nameless.ckpt").meta.class_names
    assert names[0] == "__background__" and names[1:3] == ["class1", "class2"]
    faces = load_file(embedding_run["best_checkpoint"])
    stored = faces.pop(META_KEY)
    atomic_save(faces, tmp_path / "faces.ckpt")
    assert load_model(tmp_path / "faces.ckpt").meta.as_dict() == stored


def test_a_malformed_metadata_entry_is_named(embedding_run, tmp_path):
    checkpoint = load_file(embedding_run["best_checkpoint"])
    checkpoint[META_KEY] = {**checkpoint[META_KEY], "class_names": "abc"}
    atomic_save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=r"mnet_meta\.class_names is a str"):
        load_model(tmp_path / "bad.ckpt")


def test_fast_and_plain_detections_agree(detection_run):
    image = sorted((Path(detection_run["run_dir"]).parent / "data" / "val2017").glob("*.png"))[0]
    x = torch.from_numpy(np.ascontiguousarray(read_rgb(image).transpose(2, 0, 1))).float() / 255
    plain, fast = (load_model(detection_run["best_checkpoint"], fast=f).model for f in (False, True))
    with torch.inference_mode():
        (a,), (b,) = plain([x]), fast([x])
    assert torch.equal(a["labels"], b["labels"]) and len(a["boxes"]) > 0
    torch.testing.assert_close(b["boxes"], a["boxes"], rtol=0, atol=1e-4)
    torch.testing.assert_close(b["scores"], a["scores"], rtol=0, atol=1e-4)


def test_fast_and_plain_embeddings_agree(embedding_run):
    files = sorted((Path(embedding_run["run_dir"]).parent / "data" / "test").glob("*/*"))[:6]
    plain, fast = (Embedder(embedding_run["best_checkpoint"], fast=f).embed_files(files, progress=False)
                   for f in (False, True))
    assert plain.paths == fast.paths == files
    np.testing.assert_allclose(fast.embeddings, plain.embeddings, rtol=0, atol=1e-4)


@pytest.mark.parametrize("crops", [1, 5])
def test_fast_and_plain_geolocation_agree(geo_run, crops):
    photos = [read_rgb(p) for p in sorted((Path(geo_run["run_dir"]).parent / "data" / "test").glob("*.png"))[:4]]
    (plain, plain_cells), (fast, fast_cells) = (
        Geolocator(geo_run["best_checkpoint"], crops=crops, fast=f).locate(photos) for f in (False, True))
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-4)
    assert [c[0]["class"] for c in fast_cells] == [c[0]["class"] for c in plain_cells]


@pytest.mark.parametrize("overrides", [
    ["data=imagenet"], ["data=shapes"], ["data=identities"], ["data=synthetic_identities"], ["data=celeba"],
    ["data=synthetic_attributes"], ["data=synthetic_geo"], ["data=synthetic_geo", "data.test_crops=5"],
    ["data=coco"], ["data=shapes_detection"],
], ids=lambda o: "+".join(v.split("=")[1] for v in o))
def test_eval_transform_is_the_datamodules(overrides, tmp_path):
    cfg = compose([*overrides, "task.input_size=40", f"data.root={tmp_path}"])
    datamodule = instantiate(cfg.data)
    image = np.random.default_rng(0).integers(0, 256, (57, 83, 3), dtype=np.uint8)
    crops = int(cfg.data.get("test_crops", 1))
    theirs = datamodule.test_transform if crops > 1 else datamodule.eval_transform
    ours = eval_transform(cfg, crops)
    detection = isinstance(datamodule, CocoDetectionDataModule)
    # a detection pipeline takes boxes and labels too: they must pass through both alike
    data = {"image": image, "bboxes": [[3.0, 4.0, 30.0, 40.0]], "labels": [1]} if detection else {"image": image}
    mine, expected = apply_seeded(ours, 0, **data), apply_seeded(theirs, 0, **data)
    assert torch.equal(mine.pop("image"), expected["image"])
    assert {k: np.asarray(v).tolist() for k, v in mine.items()} == \
        {k: np.asarray(v).tolist() for k, v in expected.items() if k != "image"}
    assert expected["image"].shape[-1] == (83 if detection else 40)

def test_crops_are_checked():
    cfg = compose(["data=shapes"])
    with pytest.raises(ValueError, match="crops must be 1"):
        eval_transform(cfg, 3)
