"""The attribute task: masked BCE on known values, a tiny run end to end, evaluation from its
checkpoint, and distillation from a teacher's attribute probabilities."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mnet_vision.config import compose
from mnet_vision.data.synthetic.attributes import ATTRIBUTE_NAMES
from mnet_vision.inference.dump_teacher import dump_teacher_outputs
from mnet_vision.tasks.attributes import masked_bce
from mnet_vision.training import build_task, evaluate, train
from tests.helpers.configs import tiny_attribute_overrides

K = len(ATTRIBUTE_NAMES)


def test_masked_bce_ignores_unknown_labels():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], requires_grad=True)
    labels = torch.tensor([[1, 0, -1], [-1, 1, 0]])
    loss = masked_bce(logits, labels)
    known = labels != -1
    expected = F.binary_cross_entropy_with_logits(logits[known], labels[known].float())
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert logits.grad[~known].abs().sum() == 0 and (logits.grad[known] != 0).all()
    # nothing known: zero, not NaN
    assert masked_bce(logits, torch.full((2, 3), -1)).item() == 0.0


def test_masked_bce_positive_weights():
    logits, labels = torch.zeros(1, 2), torch.tensor([[1, 1]])
    weighted = masked_bce(logits, labels, pos_weight=torch.tensor([3.0, 1.0]))
    assert weighted.item() == pytest.approx((3 + 1) / 2 * torch.log(torch.tensor(2.0)).item())


def test_bad_positive_weights_are_errors(tmp_path):
    with pytest.raises(Exception, match=f"lists 2 weights for {K} attributes"):
        build_task(compose(tiny_attribute_overrides(tmp_path, "task.module.pos_weight=[1.0,2.0]")))
    with pytest.raises(Exception, match="pos_weight must be null, 'balanced'"):
        build_task(compose(tiny_attribute_overrides(tmp_path, "task.module.pos_weight=rare")))


def test_tiny_run_learns_and_reports_per_attribute(attribute_run):
    run = Path(attribute_run["run_dir"])
    assert 0 < attribute_run["test/mean_ap"] <= 1 and 0 < attribute_run["test/mean_accuracy"] <= 1
    # a random ranking's AP is the positive rate: 30 steps of a tiny network must beat it
    chance = _mean_positive_rate(run.parent / "data")
    print(f"tiny run: test mean AP {attribute_run['test/mean_ap']:.3f}, chance {chance:.3f}")
    assert attribute_run["test/mean_ap"] > chance + 0.03
    per_attribute = {k: v for k, v in attribute_run.items() if k.startswith("test/ap/")}
    assert sorted(per_attribute) == sorted(f"test/ap/{n}" for n in ATTRIBUTE_NAMES)
    table = (run / "attributes_test.md").read_text()
    assert all(f"| {name} |" in table for name in ATTRIBUTE_NAMES) and "**mean**" in table
    assert (run / "attributes_test.png").stat().st_size > 10_000


def _mean_positive_rate(data_root: Path) -> float:
    from mnet_vision.data.attributes import read_celeba_attributes, read_celeba_partition

    table = read_celeba_attributes(data_root / "list_attr_celeba.txt")
    partition = read_celeba_partition(data_root / "list_eval_partition.txt")
    test = torch.from_numpy(table.labels[[i for i, f in enumerate(table.files) if partition[f] == 2]])
    return float((test == 1).float().mean(0)[(test == 1).any(0)].mean())


def test_evaluate_from_checkpoint_reproduces_the_test_metrics(attribute_run, tmp_path):
    metrics = evaluate(attribute_run["best_checkpoint"], "test", out_dir=tmp_path)
    assert metrics["test/mean_ap"] == pytest.approx(attribute_run["test/mean_ap"], abs=1e-5)
    assert (tmp_path / "attributes_test.png").exists() and (tmp_path / "attributes_test.md").exists()


def test_balanced_positive_weights_come_from_the_training_labels(attribute_run, tmp_path):
    data = Path(attribute_run["run_dir"]).parent / "data"
    cfg = compose(tiny_attribute_overrides(data, "task.module.pos_weight=balanced", "trainer.max_epochs=1",
                                           "test_after_fit=false"))
    from hydra.utils import instantiate

    assert train(cfg, run_dir=tmp_path)["train/loss"] > 0  # a whole fit with the weights
    task, datamodule = build_task(cfg), instantiate(cfg.data)
    positives, negatives = datamodule.label_counts()
    task.trainer = type("Trainer", (), {"datamodule": datamodule})()  # setup reads only the data module
    task.setup("fit")
    expected = (negatives.float() / positives.float().clamp(min=1)).clamp(1 / 50, 50)
    assert torch.allclose(task.pos_weight, expected)
    assert (positives + negatives).sum() < 48 * K  # the synthetic set leaves some training labels unknown


def test_distilled_student_and_a_teacher_with_other_attributes(attribute_run, tmp_path):
    data = Path(attribute_run["run_dir"]).parent / "data"
    teacher = attribute_run["best_checkpoint"]
    stored = dump_teacher_outputs(teacher, tmp_path / "teacher.pt")
    cfg = compose(tiny_attribute_overrides(data, "distill=soft_bce", "distill/teacher=stored",
                                           f"distill.teacher.path={stored}", "trainer.max_epochs=5",
                                           "distill.losses.attributes.temperature=2.0"))
    metrics = train(cfg, run_dir=tmp_path / "student")
    assert metrics["train/distill_attributes"] >= 0 and 0 < metrics["test/mean_ap"] <= 1
    assert (tmp_path / "student" / "attributes_test.png").exists()
    # a teacher trained on 3 attributes cannot teach 17
    other = torch.load(stored, weights_only=True)
    other["outputs"]["logits"] = other["outputs"]["logits"][:, :3]
    torch.save(other, tmp_path / "three.pt")
    cfg = compose(tiny_attribute_overrides(data, "distill=soft_bce", "distill/teacher=stored",
                                           f"distill.teacher.path={tmp_path / 'three.pt'}"))
    with pytest.raises(Exception, match=rf"'attributes'.*shape \({K},\) but the teacher's has \(3,\)"):
        build_task(cfg)


def test_metrics_json_has_the_means(attribute_run):
    stored = json.loads((Path(attribute_run["run_dir"]) / "metrics.json").read_text())
    assert {"val/mean_ap", "test/mean_ap", "test/mean_balanced_accuracy"} <= set(stored)


def test_evaluated_ap_ranks_raw_logits_at_any_scale(attribute_run, tmp_path):
    """Issue 13: the epoch metric kept float32 sigmoids, which are 1.0 above a logit of ~17, so a
    confident model's top predictions tied and its AP changed. Scaling the classifier's last layer
    by 128 (a power of two: every logit is exactly 128 times as large) keeps each ranking, so the
    AP that tools/eval.py reports must stay the same to the last digit."""
    ckpt = torch.load(attribute_run["best_checkpoint"], weights_only=True)
    layer = [k for k in ckpt["state_dict"] if k.endswith("fc.weight")]
    assert len(layer) == 1, f"expected one classifier layer, found {layer}"
    for key in (layer[0], layer[0].replace("fc.weight", "fc.bias")):
        ckpt["state_dict"][key] = ckpt["state_dict"][key] * 128
    torch.save(ckpt, tmp_path / "confident.ckpt")
    plain = evaluate(attribute_run["best_checkpoint"], "test", out_dir=tmp_path / "plain")
    confident = evaluate(tmp_path / "confident.ckpt", "test", out_dir=tmp_path / "confident")
    aps = sorted(k for k in plain if k.startswith("test/ap/"))
    assert aps and [confident[k] for k in aps] == [plain[k] for k in aps]
    assert confident["test/mean_ap"] == plain["test/mean_ap"]
