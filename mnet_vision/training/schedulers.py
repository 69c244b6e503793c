"""Learning-rate schedules that the shipped configs chain from torch's (``conf/scheduler/``)."""
from __future__ import annotations

from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR, LRScheduler, SequentialLR


class LinearWarmup(SequentialLR):
    """``warmup`` steps of linear warm-up from ``start_factor`` x lr up to lr, then ``after``.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        after: builds the schedule that follows from the optimizer (a partial config, e.g.
            ``ExponentialLR`` with its ``gamma``); it starts at step ``warmup`` from the full lr.
        warmup: warm-up length, in the scheduler's steps (epochs or optimizer steps, as the
            config's ``interval`` says); 0 starts ``after`` at once.
        start_factor: the first step's fraction of the learning rate, in (0, 1].
    """

    def __init__(self, optimizer: Optimizer, after: Callable[[Optimizer], LRScheduler], warmup: int,
                 start_factor: float = 0.001):
        if warmup < 0:
            raise ValueError(f"LinearWarmup: warmup must be >= 0 steps, got {warmup}")
        ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=max(warmup, 1))
        super().__init__(optimizer, schedulers=[ramp, after(optimizer)], milestones=[warmup])
