"""The config axes: every shipped recipe and experiment takes debug=tiny, every optimizer and
scheduler config builds, and the one init_from block reaches every task."""
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mnet_vision.config import CONF_DIR, compose
from mnet_vision.training.optim import build_optimizers

CONFIGS = sorted([f"task={p.stem}" for p in (CONF_DIR / "task").glob("*.yaml")]
                 + [f"experiment={p.stem}" for p in (CONF_DIR / "experiment").glob("*.yaml")])


@pytest.mark.parametrize("config", CONFIGS)
def test_every_shipped_config_takes_debug_tiny_and_has_one_init_from(config):
    cfg = compose([config, "debug=tiny"])
    assert (cfg.backbone.alpha, cfg.trainer.max_epochs, cfg.data.num_workers) == (0.25, 1, 0)
    assert not cfg.trainer.enable_progress_bar and cfg.trainer.num_sanity_val_steps == 0
    assert list(cfg.logger) == ["csv"]
    assert OmegaConf.to_container(cfg.task.init_from) == {"path": None, "scope": "model", "format": "mnet"}


@pytest.mark.parametrize("optimizer", sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml")))
@pytest.mark.parametrize("scheduler", sorted(p.stem for p in (CONF_DIR / "scheduler").glob("*.yaml")))
def test_every_optimizer_and_scheduler_config_builds(optimizer, scheduler):
    cfg = compose(["task=classification", "data=shapes", f"optimizer@task.module.optimizer={optimizer}",
                   f"scheduler@task.module.scheduler={scheduler}"])
    module = OmegaConf.to_container(cfg.task.module, resolve=True)
    built = build_optimizers(torch.nn.Linear(2, 2), module["optimizer"], module["scheduler"], 1e-4)
    assert type(built["optimizer"]).__name__ == instantiate(module["optimizer"]).func.__name__
    assert built["lr_scheduler"]["interval"] == "epoch"
