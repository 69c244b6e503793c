"""The warm-up schedules: a linear ramp to the configured lr, then the chained decay."""
import pytest
import torch
from omegaconf import OmegaConf

from mnet_vision.config import compose
from mnet_vision.model import build_model
from mnet_vision.training.optim import build_optimizers
from mnet_vision.training.schedulers import LinearWarmup


def _lrs(optimizer, scheduler, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_linear_warmup_then_exponential():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LinearWarmup(opt, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.5), warmup=4,
                         start_factor=0.25)
    assert _lrs(opt, sched, 7) == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0, 0.5, 0.25])


def test_zero_warmup_is_the_schedule_alone():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LinearWarmup(opt, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.5), warmup=0)
    assert _lrs(opt, sched, 3) == pytest.approx([1.0, 0.5, 0.25])


@pytest.mark.parametrize("name", ["warmup_exponential", "warmup_cosine"])
def test_the_warmup_configs_build_on_a_recipe(name):
    cfg = compose(["task=ssd300", f"+scheduler@task.module.scheduler={name}", "backbone.alpha=0.25",
                   "task.input_size=96"])
    module = OmegaConf.to_container(cfg.task.module, resolve=True)
    built = build_optimizers(build_model(cfg), module["optimizer"], module["scheduler"], module["weight_decay"])
    optimizer, scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, LinearWarmup) and built["lr_scheduler"]["interval"] == "epoch"
    lrs = _lrs(optimizer, scheduler, 6)
    assert lrs[0] == pytest.approx(0.004 * 0.001) and lrs[5] == pytest.approx(0.004)  # 5 warm-up epochs
    assert lrs == sorted(lrs)
