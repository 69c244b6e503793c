"""The attribute task: masked BCE on known values, a tiny run end to end, evaluation from its
checkpoint, and distillation from a teacher's attribute probabilities."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mnet_vision.config import compose
from mnet_vision.data.synthetic.attributes import ATTRIBUTE_NAMES
from mnet_vision.faces.attribute_crops import save_answers_sheet
from mnet_vision.heads.faceapi import EXPRESSIONS, GENDERS
from mnet_vision.inference.dump_teacher import dump_teacher_outputs
from mnet_vision.tasks.attributes import masked_bce, masked_cross_entropy, masked_l1
from mnet_vision.training import build_task, evaluate, train
from tests.helpers.configs import tiny_attribute_overrides
from tests.helpers.pretrained import faceapi_package

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


# Outputs beside the binary attributes (task=attribute_outputs): a regression and two multi-class
# outputs on a tiny CSV set whose labels are drawn into the images, some of them unknown.

MOODS = ["calm", "glad", "cross"]


def write_outputs_set(root: Path, counts=(("train", 48), ("val", 24), ("test", 24)), seed: int = 0) -> Path:
    """32x32 images of one colour: its red level is the age (5-75 years), its green level the mood,
    its blue level 60 (male) or 200 (female), with a little noise; every 7th age and every 5th gender
    left unknown (empty)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    for split, count in counts:
        rows = ["path,age,gender,mood"]
        for i in range(count):
            age, gender, mood = rng.uniform(5, 75), int(rng.integers(2)), int(rng.integers(3))
            colour = np.array([40 + 2.5 * age, 20 + 100 * mood, 60 + 140 * gender])
            image = (colour + rng.normal(0, 8, (32, 32, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / "images" / f"{split}{i}.png")
            rows.append(f"{split}{i}.png,{'' if i % 7 == 3 else f'{age:.2f}'},"
                        f"{'' if i % 5 == 2 else ['male', 'female'][gender]},{MOODS[mood]}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def outputs_overrides(root: Path, *extra: str) -> list[str]:
    return ["task=attribute_outputs", "debug=tiny", f"data.root={root}", "data.images=images",
            "data.num_attributes=0", "data.regression=[age]", f"data.categorical={{gender:[male,female],"
            f"mood:[{','.join(MOODS)}]}}", "task.regression={age:{center:40,scale:20}}",
            "task.categorical=${data.categorical}", "task.input_size=32", "data.batch_size=16", "data.hflip=false",
            "task.module.optimizer.lr=0.002", "task.module.optimizer.eps=1e-3", "trainer.max_epochs=20",
            "trainer.check_val_every_n_epoch=20", *extra]


@pytest.fixture(scope="module")
def outputs_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("attribute_outputs")
    data = write_outputs_set(root / "data")
    return train(compose(outputs_overrides(data, "task.module.output_weights={age:4.0}")), run_dir=root / "run")


def test_masked_l1_and_cross_entropy_leave_unknown_labels_out():
    predicted = torch.tensor([30.0, 50.0, 10.0], requires_grad=True)
    target = torch.tensor([35.0, float("nan"), 4.0])
    loss = masked_l1(predicted, target, scale=10.0)
    assert loss.item() == pytest.approx((5 + 6) / 10 / 2)
    loss.backward()
    assert predicted.grad[1] == 0 and predicted.grad[0] < 0 < predicted.grad[2]
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 3.0]], requires_grad=True)
    labels = torch.tensor([0, -1, 2])
    expected = F.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert masked_cross_entropy(logits, labels).item() == pytest.approx(expected.item())
    assert masked_cross_entropy(logits, torch.full((3,), -1)).item() == 0.0
    assert masked_l1(predicted, torch.full((3,), float("nan"))).item() == 0.0


def test_outputs_run_learns_age_gender_and_mood(outputs_run):
    run = Path(outputs_run["run_dir"])
    test = [line.split(",") for line in (run.parent / "data" / "test.csv").read_text().splitlines()[1:]]
    ages = np.array([float(r[1]) for r in test if r[1]])
    baseline = float(np.abs(ages - 40).mean())  # an untrained head answers its centre, 40 years
    print(f"tiny outputs run: age MAE {outputs_run['test/age_mae']:.2f} years (centre's {baseline:.2f}), gender "
          f"{outputs_run['test/gender_accuracy']:.3f}, mood {outputs_run['test/mood_accuracy']:.3f}")
    # 60 steps of a 0.25 MobileNet: the classes are learnt well, the age (an L1 loss, weighted 4) begins to be
    assert outputs_run["test/age_mae"] < 0.85 * baseline
    assert outputs_run["test/gender_accuracy"] > 0.8 and outputs_run["test/mood_accuracy"] > 0.5
    assert {f"test/mood_accuracy/{m}" for m in MOODS} <= set(outputs_run)
    table = (run / "attributes_test.md").read_text()
    assert "| age | MAE |" in table and "| mood: glad | accuracy |" in table
    assert "test/mean_ap" not in outputs_run  # no binary attribute: none scored, none invented


def test_outputs_checkpoint_evaluates_to_the_same_metrics(outputs_run, tmp_path):
    metrics = evaluate(outputs_run["best_checkpoint"], "test", out_dir=tmp_path)
    for key in ("test/age_mae", "test/gender_accuracy", "test/mood_accuracy"):
        assert metrics[key] == pytest.approx(outputs_run[key], abs=1e-5)


def test_outputs_task_refuses_other_class_orders_and_unknown_weights(tmp_path):
    data = write_outputs_set(tmp_path / "data", counts=(("train", 4), ("val", 2), ("test", 2)))
    cfg = compose(outputs_overrides(data, "task.categorical={gender:[female,male],mood:[calm,glad,cross]}"))
    with pytest.raises(ValueError, match=r"the data's 'gender' classes \['male', 'female'\] differ from the task's"):
        train(cfg, run_dir=tmp_path / "run")
    with pytest.raises(Exception, match=r"output_weights names \['height'\]"):
        build_task(compose(outputs_overrides(data, "task.module.output_weights={height:2.0}")))


# experiment=faceapi_attributes: face-api's age/gender and expression nets as the live teacher.

def test_faceapi_attributes_experiment_uses_faceapi_class_order():
    cfg = compose(["experiment=faceapi_attributes", "data.root=unused"])
    assert list(cfg.data.categorical.gender) == list(GENDERS)
    assert list(cfg.data.categorical.expression) == list(EXPRESSIONS)
    assert cfg.task.categorical == cfg.data.categorical and list(cfg.data.regression) == ["age"]
    assert {name: term.output for name, term in cfg.distill.losses.items()} == {
        "age": "age", "gender": "gender", "expression": "expression"}
    assert cfg.distill.teacher.probabilities is False  # HintonKD takes the log-probabilities as logits


def test_student_distils_from_faceapi_attribute_nets(tmp_path):
    faceapi_package()
    root = tmp_path / "faces"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
        rows = ["path,age,gender,expression"]
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "images" / f"{split}{i}.png")
            rows.append(f"images/{split}{i}.png," + (",," if split == "train" else f"{20 + i},female,happy"))
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    cfg = compose(["experiment=faceapi_attributes", f"data.root={root}", "debug=tiny", "task.input_size=32",
                   "data.batch_size=4", "trainer.max_epochs=1"])
    metrics = train(cfg, run_dir=tmp_path / "run")
    for term in ("age", "gender", "expression"):
        assert np.isfinite(metrics[f"train/distill_{term}"]) and metrics[f"train/distill_{term}"] >= 0
    assert 0 <= metrics["test/gender_accuracy"] <= 1 and metrics["test/age_mae"] >= 0
    state = torch.load(metrics["best_checkpoint"], weights_only=True)["state_dict"]
    assert state and all(k.startswith(("student.", "terms.")) for k in state)  # the teacher is never saved
    # the picture of a split's faces with the file's answers and the student's (the docs' sheet)
    sheet = save_answers_sheet(metrics["best_checkpoint"], root, tmp_path / "sheet.png")
    assert Image.open(sheet).size[0] > 300


def test_loss_of_binary_and_other_outputs_is_their_weighted_sum(tmp_path):
    """Known by construction: the total is sum_k weight_k * loss_k over the outputs whose labels the
    batch has; an output the batch has no targets for adds nothing."""
    data = write_outputs_set(tmp_path / "data", counts=(("train", 2), ("val", 1), ("test", 1)))
    task = build_task(compose(outputs_overrides(data, "data.num_attributes=2",
                                                "task.module.output_weights={logits:0.5,age:2.0}")))
    outputs = {"logits": torch.tensor([[2.0, -1.0], [0.5, 0.0]]), "age": torch.tensor([30.0, 70.0]),
               "gender": torch.tensor([[1.0, -1.0], [0.0, 2.0]]), "mood": torch.zeros(2, 3)}
    batch = {"image": torch.zeros(2, 3, 32, 32), "attributes": torch.tensor([[1, 0], [-1, 1]]),
             "targets": {"age": torch.tensor([40.0, float("nan")]), "gender": torch.tensor([0, -1])}}
    expected = (0.5 * masked_bce(outputs["logits"], batch["attributes"]) + 2.0 * 10 / 20
                + F.cross_entropy(outputs["gender"][:1], torch.tensor([0])))
    assert task.loss(outputs, batch, "train").item() == pytest.approx(expected.item())
    assert task.monitor == ("val/mean_ap", "max")  # binary attributes keep their metric
