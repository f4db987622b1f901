"""Size of a network: trainable parameters and multiply-accumulates per image."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one image.

    This is what NAS benchmarks report as FLOPs; other layers (norms,
    activations, pooling, additions) are small next to them and left out.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * per_output

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters(), torch.empty(0)).device
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)
