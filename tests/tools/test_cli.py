"""The tools as a user runs them: subprocesses from the repository root."""
import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_tool
from tests.helpers.coco import GT, perfect_results
from tests.helpers.configs import (
    tiny_attribute_overrides,
    tiny_detection_overrides,
    tiny_identity_overrides,
    tiny_overrides,
)


def test_complexity_json_for_the_issue_example():
    out = run_tool("complexity.py", "experiment=imagenet", "backbone.alpha=0.5", "task.input_size=160", "output=json")
    result = json.loads(out.stdout)
    assert round(result["mult_adds"] / 1e6) == 77 and round(result["params"] / 1e6, 2) == 1.32  # Table 9: 76 M / 1.32 M
    assert set(result["by_type"]) == {"conv_3x3", "depthwise_3x3", "conv_1x1", "fc"}


def test_complexity_table():
    out = run_tool("complexity.py", "experiment=dogs", "backbone=mobilenet_v3_small", "backbone.alpha=0.75")
    assert "| **total** |" in out.stdout


@pytest.fixture(scope="module")
def shapes_tool_run(shapes_root, tmp_path_factory):
    """tools/train.py's default tiny shapes run, once for the tests that read it: (run folder, stdout)."""
    run_dir = tmp_path_factory.mktemp("shapes_tool") / "run"
    return run_dir, run_tool("train.py", *tiny_overrides(shapes_root), f"hydra.run.dir={run_dir}").stdout


def test_train_then_eval(shapes_tool_run, tmp_path):
    run_dir, stdout = shapes_tool_run
    assert "| test/top1 |" in stdout
    assert (run_dir / ".hydra" / "config.yaml").is_file()  # the resolved config beside the run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    out = run_tool("eval.py", f"ckpt={metrics['best_checkpoint']}", "split=test", f"output={tmp_path / 'eval.json'}",
                   "data.num_workers=0")
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["test/top1"] == pytest.approx(metrics["test/top1"])
    assert "| test/top1 |" in out.stdout


def test_multirun_over_widths(shapes_root, tmp_path):
    sweep = tmp_path / "sweep"
    run_tool("train.py", "-m", *tiny_overrides(shapes_root, "backbone.alpha=0.25,0.5", "test_after_fit=false"),
             f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}")
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert (sweep / job / "metrics.json").is_file()


def test_ddp_two_cpu_processes_match_one_process_shape(shapes_root, shapes_tool_run, tmp_path):
    single = shapes_tool_run[0]
    ddp = tmp_path / "ddp"
    run_tool("train.py", *tiny_overrides(shapes_root, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                                        "trainer.sync_batchnorm=false"),
             f"hydra.run.dir={ddp}")
    one = json.loads((single / "metrics.json").read_text())
    two = json.loads((ddp / "metrics.json").read_text())
    numeric = {k for k, v in one.items() if isinstance(v, (int, float))}
    assert numeric == {k for k, v in two.items() if isinstance(v, (int, float))}
    assert (ddp / "checkpoints" / "last.ckpt").is_file()
    assert 0.0 <= two["test/top1"] <= 1.0


def test_eval_scores_a_coco_results_file(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    (tmp_path / "res.json").write_text(json.dumps(perfect_results()))
    out = run_tool("eval.py", f"gt={tmp_path / 'gt.json'}", f"results={tmp_path / 'res.json'}",
                   f"output={tmp_path / 'm.json'}")
    assert "| AP | 1.0000 |" in out.stdout
    assert json.loads((tmp_path / "m.json").read_text())["AR100"] == pytest.approx(1.0)


def test_detection_eval_and_detect_on_a_trained_run(detection_run, tmp_path):
    # the session's tiny detection run (what train.py runs; the DDP test below runs train.py itself)
    ckpt, data = detection_run["best_checkpoint"], Path(detection_run["run_dir"]).parent / "data"
    out = run_tool("eval.py", f"ckpt={ckpt}", "split=val", "data.num_workers=0")
    assert "| val/AP |" in out.stdout
    out = run_tool("detect.py", f"ckpt={ckpt}", f"input={data / 'val2017'}", f"out={tmp_path / 'det'}", "score=0.05",
                   "max_pixels=null")
    assert "images ->" in out.stdout
    assert len(list((tmp_path / "det").glob("*.png"))) == 4
    out = run_tool("detect.py", f"ckpt={ckpt}", f"input={data / 'val2017'}",
                   f"out={tmp_path / 'det2'}", "max_pixels=1000")
    assert "in 0 images" in out.stdout and "skipped 4 unreadable" in out.stdout  # 64x64 > 1000 pixels


def test_detection_under_two_process_ddp_scores_every_val_image(tmp_path):
    """Each process detects half the images; the COCO score gathers both halves (all_gather_object)."""
    run_dir = tmp_path / "ddp"
    out = run_tool("train.py", *tiny_detection_overrides(tmp_path / "data", "trainer=ddp", "trainer.accelerator=cpu",
                                                         "trainer.devices=2", "trainer.sync_batchnorm=false"),
                   f"hydra.run.dir={run_dir}")
    assert "| test/AP50 |" in out.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test/AP50"] <= 1.0
    results = json.loads((run_dir / "detections_test.json").read_text())
    assert {r["image_id"] for r in results} == {1, 2, 3, 4}  # both ranks' detections (untrained: some on every image)


def test_faces_teacher_dump_distil_eval_index_search(embedding_run, tmp_path):
    """The README's faces demo on a tiny set: triplet teacher (the session's tiny triplet run, what
    train.py runs), stored teacher outputs, a distilled student, LFW-style evaluation, an index of the
    test identities and a search."""
    teacher_dir = Path(embedding_run["run_dir"])
    data, student_dir = teacher_dir.parent / "data", tmp_path / "student"
    teacher = teacher_dir / "checkpoints" / "last.ckpt"
    stored = tmp_path / "teacher_train.pt"
    run_tool("dump_teacher.py", f"ckpt={teacher}", f"out={stored}", f"data.root={data}")
    out = run_tool("train.py", *tiny_identity_overrides(data, "distill=embedding_l2", "distill/teacher=stored",
                                                        f"distill.teacher.path={stored}"),
                   f"hydra.run.dir={student_dir}")
    assert "| test/accuracy |" in out.stdout and "| test/tar@far0.001 | nan |" in out.stdout  # 153 pairs: too few
    student = student_dir / "checkpoints" / "last.ckpt"
    out = run_tool("eval.py", f"ckpt={student}", f"output={tmp_path / 'eval.json'}")
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert 0.0 <= metrics["test/accuracy"] <= 1.0 and metrics["test/pairs"] == 40  # 10 folds x 2 x 2 pairs
    assert (student_dir / "eval_test" / "roc_test.png").is_file()
    run_tool("roc.py", f"out={tmp_path / 'roc.png'}", f"curves={{teacher:{teacher_dir / 'embeddings_test.pt'},"
             f"student:{student_dir / 'eval_test' / 'embeddings_test.pt'}}}")  # label:file pairs (Hydra keys)
    assert (tmp_path / "roc.png").stat().st_size > 1000
    index = tmp_path / "faces.faiss"
    out = run_tool("build_index.py", f"ckpt={student}", f"gallery={data / 'test'}", f"out={index}")
    assert "18 faces" in out.stdout
    person = sorted((data / "test").iterdir())[3]
    query = sorted(person.iterdir())[0]
    out = run_tool("search.py", f"index={index}", f"ckpt={student}", f"query={query}",
                   "k=18", f"output={tmp_path / 'hits.json'}", f"picture={tmp_path / 'hits.png'}")
    hits = json.loads((tmp_path / "hits.json").read_text())
    matches = hits[0]["matches"]
    # every id maps back to its own photo and name; the gallery holds the query itself, at the top
    # score up to float32 rounding (this tiny 20-epoch student is near-constant: its scores all
    # round to ~1.0, so which tied entry comes first is noise, not something to assert)
    assert sorted(m["source"] for m in matches) == sorted(str(p) for p in (data / "test").rglob("*.png"))
    assert all(Path(m["source"]).parent.name == m["identity"] for m in matches)
    own = next(m for m in matches if m["source"] == str(query))
    assert own["identity"] == person.name and own["score"] >= matches[0]["score"] - 1e-5 > 0.999
    assert (tmp_path / "hits.png").stat().st_size > 1000


def test_attributes_demo_teacher_dump_table12_multirun_eval(tmp_path):
    """The README's attributes demo on a tiny set: a labelled teacher, its stored outputs, then
    Table 12's grid (here 2 widths x 1 resolution) distilled as one multirun, and evaluation."""
    data, teacher_dir, sweep = tmp_path / "data", tmp_path / "teacher", tmp_path / "sweep"
    tiny = tiny_attribute_overrides(data, "trainer.max_epochs=5")[1:]  # without task=attributes
    run_tool("train.py", "experiment=attributes_teacher", *tiny, "backbone.alpha=0.5", f"hydra.run.dir={teacher_dir}")
    stored = tmp_path / "teacher_attributes.pt"
    run_tool("dump_teacher.py", f"ckpt={teacher_dir / 'checkpoints' / 'last.ckpt'}", f"out={stored}")
    run_tool("train.py", "-m", "experiment=attributes_student", *tiny, f"distill.teacher.path={stored}",
             "backbone.alpha=0.25,0.5", "task.input_size=32", f"hydra.sweep.dir={sweep}",
             "hydra.sweep.subdir=${hydra.job.num}")
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert 0 < metrics["test/mean_ap"] <= 1 and metrics["train/distill_attributes"] >= 0
        assert (sweep / job / "attributes_test.png").is_file()
    out = run_tool("eval.py", f"ckpt={sweep / '1' / 'checkpoints' / 'last.ckpt'}", f"output={tmp_path / 'eval.json'}")
    assert "| test/mean_ap |" in out.stdout and "| test/ap/framed |" in out.stdout
    assert (sweep / "1" / "eval_test" / "attributes_test.md").is_file()
