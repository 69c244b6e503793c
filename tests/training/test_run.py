"""Training through the Python entry point: outputs, resume, fine-tuning, evaluation, skips."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from mnet_vision.checkpoints import CheckpointMismatchError, atomic_save, load_file
from mnet_vision.config import compose
from mnet_vision.training import evaluate, train
from tests.helpers.configs import tiny_overrides


def _train(root, run_dir, *extra):
    return train(compose(tiny_overrides(root, *extra)), run_dir=run_dir)


@pytest.fixture(scope="module")
def default_run(shapes_root, tmp_path_factory):
    """One default tiny run (1 epoch, tested after fit) that the tests which only read its folder or
    its checkpoints share: its metrics dict, the folder at ``run_dir``."""
    run_dir = tmp_path_factory.mktemp("default") / "run"
    return {**_train(shapes_root, run_dir), "run_dir": run_dir}


def test_train_writes_checkpoints_logs_and_metrics(default_run):
    metrics, run = default_run, default_run["run_dir"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert metrics["best_checkpoint"].startswith(str(run / "checkpoints" / "best-epoch000"))
    assert json.loads((run / "metrics.json").read_text())["test/top1"] == pytest.approx(metrics["test/top1"])
    assert list(run.glob("csv/version_0/metrics.csv"))
    assert (run / "confusion_test.png").stat().st_size > 1000
    for key in ("test/top1", "test/top5", "test/loss", "val/top1", "train/loss"):
        assert key in metrics
    assert 0.0 <= metrics["test/top1"] <= metrics["test/top5"] <= 1.0
    # no partially written checkpoint is left behind by the atomic writer
    assert not list((run / "checkpoints").glob(".*tmp*"))


def test_checkpoint_loads_weights_only_and_holds_config(default_run):
    ckpt = load_file(default_run["run_dir"] / "checkpoints" / "last.ckpt")
    assert ckpt["mnet_config"]["task"]["name"] == "shapes"
    assert any(k.startswith("model.backbone.features.conv0") for k in ckpt["state_dict"])


def test_resume_gives_the_same_weights_and_best_epoch_as_an_uninterrupted_run(shapes_root, tmp_path):
    # one chain for both claims (3 runs, not 6): a run killed after epoch 0 and resumed to 3 epochs ends
    # with the uninterrupted run's weights, validation loss, best epoch and test score
    straight = _train(shapes_root, tmp_path / "straight", "trainer.max_epochs=3")
    _train(shapes_root, tmp_path / "first", "trainer.max_epochs=1", "test_after_fit=false")
    resumed = _train(shapes_root, tmp_path / "resumed", "trainer.max_epochs=3", f"resume={tmp_path / 'first'}")
    a = load_file(tmp_path / "straight" / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_file(tmp_path / "resumed" / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert resumed["val/loss"] == pytest.approx(straight["val/loss"], abs=1e-6)
    assert Path(resumed["best_checkpoint"]).name == Path(straight["best_checkpoint"]).name
    assert resumed["test/top1"] == pytest.approx(straight["test/top1"], abs=0)


def test_resume_keeps_the_best_checkpoint_of_the_epochs_before_it(shapes_root, tmp_path):
    """A kill after the best epoch: the epochs after the resume are worse than the stored best
    (made so by construction: its score is set to 0.99 top-1), so the best must stay that epoch's
    checkpoint, copied into the new run folder, and the test must run on it."""
    first = _train(shapes_root, tmp_path / "first", "trainer.max_epochs=1", "test_after_fit=false")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    (key,) = [k for k in ckpt["callbacks"] if "'monitor': 'val/top1'" in k]
    assert Path(ckpt["callbacks"][key]["best_model_path"]) == Path(first["best_checkpoint"])
    ckpt["callbacks"][key]["best_model_score"] = torch.tensor(0.99)
    ckpt["callbacks"][key]["best_k_models"] = {first["best_checkpoint"]: torch.tensor(0.99)}
    torch.save(ckpt, last)
    resumed = _train(shapes_root, tmp_path / "resumed", "trainer.max_epochs=3", f"resume={tmp_path / 'first'}")
    best = tmp_path / "resumed" / "checkpoints" / "best-epoch000.ckpt"
    assert resumed["best_checkpoint"] == str(best.resolve())
    assert sorted(p.name for p in best.parent.glob("best-*")) == ["best-epoch000.ckpt"]
    assert Path(first["best_checkpoint"]).is_file()  # the old run keeps its file
    tested = evaluate(first["best_checkpoint"], "test", out_dir=tmp_path / "eval")
    assert resumed["test/top1"] == pytest.approx(tested["test/top1"], abs=0)


def test_last_checkpoint_holds_the_last_epoch_between_validations(shapes_root, tmp_path):
    # validation every 2 epochs, 3 epochs: the third epoch must still reach last.ckpt
    _train(shapes_root, tmp_path / "run", "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2",
           "test_after_fit=false")
    last = load_file(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2 and last["global_step"] == 3 * 4  # 60 images in batches of 16


def test_resume_from_missing_checkpoint(shapes_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        _train(shapes_root, tmp_path / "r", f"resume={tmp_path / 'nothing'}")


def test_evaluate_rebuilds_from_checkpoint(default_run):
    trained, run = default_run, default_run["run_dir"]
    metrics = evaluate(trained["best_checkpoint"], "test")
    assert metrics["test/top1"] == pytest.approx(trained["test/top1"])
    assert metrics["out_dir"] == str(run / "eval_test")
    assert (run / "eval_test" / "confusion_test.png").is_file()
    val = evaluate(trained["best_checkpoint"], "val", {"data": {"batch_size": 4}})
    assert "val/top1" in val


def test_checkpoint_of_another_config_names_the_difference(default_run, tmp_path):
    ckpt = torch.load(default_run["best_checkpoint"], weights_only=True)
    ckpt["mnet_config"]["backbone"]["alpha"] = 0.5  # as if the file came from a wider model
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"shape differences: \['backbone.features.conv0.conv.weight"):
        evaluate(tmp_path / "other.ckpt")


def test_fine_tune_backbone_from_checkpoint(shapes_root, default_run):
    trained = default_run
    ckpt = load_file(trained["best_checkpoint"])["state_dict"]
    cfg = compose(tiny_overrides(shapes_root, f"task.init_from.path={trained['best_checkpoint']}",
                                 "task.init_from.scope=backbone"))
    from mnet_vision.training import build_task
    task = build_task(cfg)
    torch.testing.assert_close(task.model.backbone.features.conv0.conv.weight,
                               ckpt["model.backbone.features.conv0.conv.weight"])
    with pytest.raises(CheckpointMismatchError, match="missing keys"):
        build_task(compose(tiny_overrides(shapes_root, "backbone=mobilenet_v3_small",
                                          f"task.init_from.path={trained['best_checkpoint']}")))


def test_unreadable_images_are_skipped_and_counted(shapes_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    for f in sorted((root / "train" / "star").iterdir())[:2]:
        f.write_bytes(b"not a png")
    metrics = _train(root, tmp_path / "run")
    assert metrics["skipped/train"] == 2.0
    with pytest.raises(Exception, match="not a png|cannot read image"):
        _train(root, tmp_path / "strict", "data.strict=true")


def test_bf16_mixed_precision_trains(shapes_root, tmp_path):
    metrics = _train(shapes_root, tmp_path / "run", "trainer.precision=bf16-mixed", "test_after_fit=false")
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_imagenet_without_data_names_the_root(tmp_path):
    cfg = compose(["experiment=imagenet", f"data.root={tmp_path / 'imagenet'}", "backbone.alpha=0.25", "logger=none",
                   "trainer.enable_progress_bar=false"])
    with pytest.raises(FileNotFoundError, match=r"data root .*imagenet does not exist; expected layout"):
        train(cfg, run_dir=tmp_path / "run")


def test_resume_with_another_model_config_names_the_keys(shapes_root, default_run, tmp_path):
    with pytest.raises(CheckpointMismatchError, match=r"backbone\.alpha: checkpoint 0\.25, now 0\.5"):
        _train(shapes_root, tmp_path / "resumed", "backbone.alpha=0.5", f"resume={default_run['run_dir']}")


def test_an_unwritable_run_folder_is_named_before_training(shapes_root, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(PermissionError, match=r"checkpoint folder .*file/run/checkpoints is not writable"):
        _train(shapes_root, tmp_path / "file" / "run")


def test_an_unwritable_eval_folder_is_named_before_the_checkpoint_is_read(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(PermissionError, match=r"output folder .*file/eval is not writable"):
        evaluate(tmp_path / "missing.ckpt", out_dir=tmp_path / "file" / "eval")


def test_a_checkpoint_that_cannot_be_written_names_its_path(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match=r"cannot write checkpoint .*file/last\.ckpt"):
        atomic_save({"x": torch.zeros(1)}, tmp_path / "file" / "last.ckpt")
