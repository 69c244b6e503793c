"""The distillation wrapper: loss terms on known values, build-time checks, a frozen and unsaved
teacher, live and stored teachers on the tiny shapes set."""
import math

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from mnet_vision.checkpoints import atomic_save, load_file
from mnet_vision.config import compose
from mnet_vision.inference.dump_teacher import STORED_FORMAT, dump_teacher_outputs
from mnet_vision.tasks.distillation import EmbeddingL2, HintonKD, RegressionL1, SoftTargetBCE
from mnet_vision.tasks.teachers import StoredTeacher
from mnet_vision.training import build_task, build_trainer, evaluate, train
from tests.helpers.configs import tiny_overrides


def tiny_teacher(classes: int = 10) -> nn.Module:
    """A small frozen-able classifier for the build checks (any nn.Module can teach)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, classes))



def _model_teacher(classes: int) -> list[str]:
    return ["distill=hinton", "distill/teacher=model", "distill.teacher.weights=null",
            "~distill.teacher.model", "+distill.teacher.model._target_=tests.tasks.test_distillation.tiny_teacher",
            f"+distill.teacher.model.classes={classes}"]


def test_hinton_kd_known_value_and_temperature_scaling():
    teacher = torch.log(torch.tensor([[1.0, 3.0]]))  # softmax [0.25, 0.75]
    student = torch.zeros(1, 2)                       # softmax [0.5, 0.5]
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert HintonKD(temperature=1.0)(student, teacher).item() == pytest.approx(kl)
    # at T=2 the teacher's logits halve: softmax [1/(1+sqrt 3), sqrt 3/(1+sqrt 3)], and the loss is x T^2
    p = torch.softmax(teacher / 2, 1)[0]
    kl2 = float((p * torch.log(p / 0.5)).sum())
    assert HintonKD(temperature=2.0)(student, teacher).item() == pytest.approx(4 * kl2)
    assert HintonKD()(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_embedding_l2_is_the_summed_squared_distance():
    s, t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert EmbeddingL2()(s, t).item() == pytest.approx(1.0)  # (2 + 0) / 2: summed over D, mean over N


def test_soft_target_bce_against_teacher_probabilities():
    zeros = torch.zeros(3, 40)
    assert SoftTargetBCE()(zeros, zeros).item() == pytest.approx(math.log(2))  # p = 0.5 both sides
    confident = torch.full((3, 40), 20.0)
    assert SoftTargetBCE()(confident, confident).item() == pytest.approx(0.0, abs=1e-6)


def test_shape_mismatch_is_an_error_when_built_unless_projected(shapes_root):
    cfg = compose(tiny_overrides(shapes_root, *_model_teacher(7)))
    with pytest.raises(Exception, match=r"'kd'.*shape \(10,\).*\(7,\).*distill.losses.kd.project=true"):
        build_task(cfg)
    task = build_task(compose(tiny_overrides(shapes_root, *_model_teacher(7), "distill.losses.kd.project=true")))
    assert task.terms["kd"].projection.weight.shape == (7, 10)
    params = {id(p) for group in task.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert {id(p) for p in task.terms.parameters()} <= params  # the projection trains with the student


def test_a_term_reading_an_output_nobody_has_is_an_error(shapes_root):
    cfg = compose(tiny_overrides(shapes_root, *_model_teacher(10), "+distill.losses.kd.output=embedding"))
    with pytest.raises(Exception, match="'embedding'.*student has \\['logits'\\]"):
        build_task(cfg)


@pytest.fixture(scope="module")
def teacher_ckpt(shapes_root, tmp_path_factory):
    """A tiny shapes classifier trained for two epochs: the teacher of the runs below."""
    run = tmp_path_factory.mktemp("teacher")
    metrics = train(compose(tiny_overrides(shapes_root, "trainer.max_epochs=2", "backbone.alpha=0.5")), run_dir=run)
    return metrics["best_checkpoint"]


def test_live_teacher_stays_frozen_and_out_of_checkpoints(shapes_root, teacher_ckpt, tmp_path):
    cfg = compose(tiny_overrides(shapes_root, "distill=hinton", f"distill.teacher.path={teacher_ckpt}"))
    task = build_task(cfg)
    before = {k: v.clone() for k, v in task.teacher.model.state_dict().items()}
    trainer = build_trainer(cfg, tmp_path, task)
    trainer.fit(task, datamodule=instantiate(cfg.data))
    assert not task.teacher.model.training  # Lightning's train()/eval() switches never reach it
    for k, v in task.teacher.model.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=k)  # no gradient step, no BatchNorm statistics
    assert all(not p.requires_grad for p in task.teacher.model.parameters())
    optimised = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert optimised == {id(p) for p in task.student.model.parameters()}
    ckpt = load_file(tmp_path / "checkpoints" / "last.ckpt")
    assert all(k.startswith("student.model.") for k in ckpt["state_dict"])  # no teacher.* keys
    assert {"train/distill_kd", "train/total_loss", "train/loss", "val/top1"} <= set(trainer.callback_metrics)
    # a distilled checkpoint evaluates as its student alone: no teacher is built
    metrics = evaluate(tmp_path / "checkpoints" / "last.ckpt", "val", out_dir=tmp_path / "eval")
    assert 0.0 <= metrics["val/top1"] <= 1.0


def test_stored_teacher_round_trip_and_bad_files(shapes_root, teacher_ckpt, tmp_path):
    stored = dump_teacher_outputs(teacher_ckpt, tmp_path / "teacher_train.pt")
    data = load_file(stored)
    assert data["format"] == STORED_FORMAT and data["outputs"]["logits"].shape == (60, 10)
    assert data["ids"][0] == "circle/00000.png"  # <class>/<file>, relative to the split folder
    metrics = train(compose(tiny_overrides(shapes_root, "distill=hinton", "distill/teacher=stored",
                                           f"distill.teacher.path={stored}")), run_dir=tmp_path / "run")
    assert metrics["test/top1"] >= 0.0 and math.isfinite(metrics["train/distill_kd"])

    partial = {**data, "ids": data["ids"][:50], "outputs": {"logits": data["outputs"]["logits"][:50]}}
    atomic_save(partial, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"no outputs for 10 of the 60 samples .*training split"):
        train(compose(tiny_overrides(shapes_root, "distill=hinton", "distill/teacher=stored",
                                     f"distill.teacher.path={tmp_path / 'partial.pt'}")), run_dir=tmp_path / "r2")
    atomic_save({**data, "outputs": {"logits": data["outputs"]["logits"][:59]}}, tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"shape \(59, 10\), expected \(60, ...\)"):
        StoredTeacher(str(tmp_path / "short.pt"))
    atomic_save({**data, "outputs": {"logits": data["outputs"]["logits"][:, :7]}}, tmp_path / "narrow.pt")
    with pytest.raises(Exception, match=r"shape \(10,\) but the teacher's has \(7,\)"):
        build_task(compose(tiny_overrides(shapes_root, "distill=hinton", "distill/teacher=stored",
                                          f"distill.teacher.path={tmp_path / 'narrow.pt'}")))
    atomic_save({"ids": []}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a stored-teacher file"):
        StoredTeacher(str(tmp_path / "other.pt"))


def test_a_detector_cannot_teach(detection_run):
    from mnet_vision.tasks.teachers import checkpoint_teacher

    with pytest.raises(ValueError, match="DetectionTask model, which has no logits or embedding"):
        checkpoint_teacher(detection_run["best_checkpoint"])


def test_dumping_over_the_teacher_checkpoint_is_refused(teacher_ckpt):
    before = open(teacher_ckpt, "rb").read()
    with pytest.raises(ValueError, match="out=.* is an input of this run"):
        dump_teacher_outputs(teacher_ckpt, teacher_ckpt)
    assert open(teacher_ckpt, "rb").read() == before


def test_dumping_a_detector_says_it_cannot_teach(detection_run, tmp_path):
    # it used to run over the whole split first and then say "no readable image"
    with pytest.raises(ValueError, match="DetectionTask model, which has no logits or embedding to teach"):
        dump_teacher_outputs(detection_run["best_checkpoint"], tmp_path / "t.pt")
    assert not (tmp_path / "t.pt").exists()


def test_a_detector_cannot_be_a_student(tmp_path):
    from tests.helpers.configs import tiny_detection_overrides

    cfg = compose(tiny_detection_overrides(tmp_path, "distill=hinton", "distill.teacher.path=unused.ckpt"))
    with pytest.raises(Exception, match="DetectionTask cannot be a distillation student"):
        build_task(cfg)


def test_temperatures_must_be_positive():
    for term in (HintonKD, SoftTargetBCE):
        with pytest.raises(ValueError, match=f"{term.__name__}: temperature must be > 0"):
            term(temperature=0)


def test_regression_l1_is_the_mean_absolute_difference_over_its_scale():
    student, teacher = torch.tensor([30.0, 50.0, 20.0]), torch.tensor([35.0, 41.0, 20.0])
    assert RegressionL1(scale=15.0)(student, teacher).item() == pytest.approx((5 + 9 + 0) / 3 / 15)
    assert RegressionL1()(student, teacher).item() == pytest.approx(14 / 3)  # in years without a scale
    with pytest.raises(ValueError, match="RegressionL1: scale must be > 0"):
        RegressionL1(scale=0.0)


def test_teacher_probabilities_teach_through_hinton_kd_as_their_logarithm():
    """A teacher that gives probabilities p (face-api's gender, expressions) is read by HintonKD as
    log p: at T = 1 the term is KL(p || softmax(s)), the soft cross-entropy minus p's entropy."""
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(5, 7, generator=gen), 1)
    student = torch.randn(5, 7, generator=gen)
    soft_ce = -(p * torch.log_softmax(student, 1)).sum(1).mean()
    entropy = -(p * p.log()).sum(1).mean()
    assert HintonKD(temperature=1.0)(student, p.log()).item() == pytest.approx((soft_ce - entropy).item(), abs=1e-6)
