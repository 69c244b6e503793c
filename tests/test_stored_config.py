"""A crafted checkpoint cannot make any ckpt= path run code (issue 13, item 1): the attack itself,
through each loader the tools use, and the allow-list's own rules."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnet_vision.config import compose
from mnet_vision.inference.detect import detect_files
from mnet_vision.inference.dump_teacher import dump_teacher_outputs
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.geolocate import Geolocator
from mnet_vision.inference.load import load_model
from mnet_vision.stored_config import ENV_ALLOWED, MOVED_TARGETS, UnsafeConfigError, allow_targets, check_stored_config
from mnet_vision.tasks.teachers import checkpoint_teacher
from mnet_vision.training import build_task, evaluate, task_from_checkpoint
from tests.helpers.configs import tiny_overrides

REPO = Path(__file__).resolve().parents[1]
VICTIM_TEXT = "precious data\n"


@pytest.fixture
def crafted(shapes_root, tmp_path):
    """A weights-only checkpoint whose stored ``backbone.alpha`` calls ``builtins.open(victim, "w")``
    when instantiated, and the victim file it would truncate."""
    task = build_task(compose(tiny_overrides(shapes_root)))
    config = copy.deepcopy(task.run_config)
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    config["backbone"]["alpha"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    path = tmp_path / "crafted.ckpt"
    torch.save({"mnet_config": config, "state_dict": {f"model.{k}": v for k, v in task.model.state_dict().items()}},
               path)
    torch.load(path, weights_only=True)  # the attack passes the weights-only check
    return path, victim


@pytest.mark.parametrize("load", [
    pytest.param(lambda ckpt, out: task_from_checkpoint(ckpt), id="task_from_checkpoint"),
    pytest.param(lambda ckpt, out: evaluate(ckpt, "test", out_dir=out), id="eval"),
    pytest.param(lambda ckpt, out: detect_files(ckpt, out / "in", out / "det"), id="detect"),
    pytest.param(lambda ckpt, out: Embedder(ckpt), id="embed/build_index/search"),
    pytest.param(lambda ckpt, out: Geolocator(ckpt), id="geolocate"),
    pytest.param(lambda ckpt, out: checkpoint_teacher(str(ckpt)), id="checkpoint_teacher"),
    pytest.param(lambda ckpt, out: dump_teacher_outputs(ckpt, out / "t.pt"), id="dump_teacher"),
])
def test_a_crafted_target_is_refused_before_it_runs(crafted, tmp_path, load):
    ckpt, victim = crafted
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "photo.png").write_bytes(b"")  # an input for detect
    with pytest.raises(UnsafeConfigError, match=r"backbone\.alpha\._target_ names 'builtins.open'"):
        load(ckpt, tmp_path)
    assert victim.read_text() == VICTIM_TEXT


def test_the_eval_tool_refuses_a_crafted_checkpoint(crafted):
    ckpt, victim = crafted
    run = subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), f"ckpt={ckpt}"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode != 0
    assert "builtins.open" in run.stderr and "refused" in run.stderr
    assert victim.read_text() == VICTIM_TEXT


def _config(shapes_root):
    return copy.deepcopy(build_task(compose(tiny_overrides(shapes_root))).run_config)


def test_the_shipped_configs_pass(shapes_root):
    check_stored_config(_config(shapes_root), "run")
    for task in ("ssd300", "planet", "attributes", "facenet_triplet", "faster_rcnn_300"):
        check_stored_config(compose([f"task={task}"]), task)


@pytest.mark.parametrize("key, value, message", [
    # a project function is not a class: atomic_write would write wherever the config says
    (("task", "head"), {"_target_": "mnet_vision.atomic.atomic_write", "path": "/tmp/x", "write": None},
     r"task\.head\._target_ names 'mnet_vision.atomic.atomic_write'"),
    (("task", "module", "optimizer"), {"_target_": "os.system", "_args_": ["true"]}, r"os\.system"),
    # hidden in a list of positional arguments
    (("backbone", "_args_"), [{"_target_": "subprocess.run", "args": ["true"]}], r"backbone\._args_\[0\]\._target_"),
    (("backbone", "_target_"), 3, r"backbone\._target_ is a int"),
    # scalars where Hydra and our constructors expect them
    (("backbone", "alpha"), {"value": 0.5}, r"backbone\.alpha is a dict, expected a float"),
    (("task", "module", "optimizer", "_partial_"), {"_target_": "mnet_vision.heads.ClassifierHead"},
     r"ClassifierHead|_partial_ is a dict"),
])
def test_unsafe_stored_configs_are_refused_naming_the_key(shapes_root, key, value, message):
    config = _config(shapes_root)
    node = config
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    with pytest.raises(UnsafeConfigError, match=message):
        check_stored_config(config, "crafted.ckpt")


def test_a_user_can_allow_a_target_of_their_own(shapes_root, monkeypatch):
    monkeypatch.setattr("mnet_vision.stored_config._user_allowed", set())
    config = _config(shapes_root)
    config["task"]["module"]["optimizer"]["_target_"] = "collections.OrderedDict"
    with pytest.raises(UnsafeConfigError, match=ENV_ALLOWED):
        check_stored_config(config, "c.ckpt")
    monkeypatch.setenv(ENV_ALLOWED, "json.loads, collections.OrderedDict")
    check_stored_config(config, "c.ckpt")
    monkeypatch.delenv(ENV_ALLOWED)
    allow_targets("collections.OrderedDict")
    check_stored_config(config, "c.ckpt")


def test_a_checkpoint_of_the_earlier_layout_still_loads(shapes_root, tmp_path):
    """Its data config names ``mnet_vision.data.SyntheticShapesDataModule``, a package re-export
    that is gone: the loaders rename it (MOVED_TARGETS) instead of refusing it as unknown."""
    task = build_task(compose(tiny_overrides(shapes_root)))
    config = copy.deepcopy(task.run_config)
    old = next(o for o, n in MOVED_TARGETS.items() if n == config["data"]["_target_"])
    config["data"]["_target_"] = old
    with pytest.raises(UnsafeConfigError, match=old):  # as such, the name is unknown
        check_stored_config(config, "old.ckpt")
    path = tmp_path / "old.ckpt"
    torch.save({"mnet_config": config, "state_dict": {f"model.{k}": v for k, v in task.model.state_dict().items()}},
               path)
    cfg, rebuilt, _ = task_from_checkpoint(path)
    assert cfg.data._target_ == MOVED_TARGETS[old]
    assert load_model(path) is not None
