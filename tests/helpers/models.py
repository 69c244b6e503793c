"""Model helpers for equality tests."""
import torch
from torch import nn


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial running stats and affine parameters (in place), so an
    equality test between two implementations means something. Returns ``model``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model
