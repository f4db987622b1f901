"""Zero-cost proxies: scores of an untrained network from one mini-batch (or none).

Each proxy is one small function of a freshly initialised network (PyTorch's
default initialisation, seeded by the candidate's seed) and, where its paper
uses data, one mini-batch of the run's training images (the same batch for
every candidate of a run). Larger is better for every one of them. What each
takes follows its paper and the reference implementation of Abdelfattah et
al. (batch of 64, one batch, default initialisation, the network in training
mode so that batch norm uses the batch's statistics):

    synflow    data-free: all parameters made positive, batch norm removed,
               float64, one input of ones; the sum over the convolutions' and
               linear layers' weights of w * dR/dw, R the sum of the outputs
    naswot     images, no labels: the log-determinant of the kernel of the
               batch's binary activation codes (which side of zero each
               activation's input is on)
    jacov      images, no labels: how uncorrelated the input gradients of the
               batch's images are
    grad_norm  images and labels: the sum over layers of the norm of the loss's
               gradient with respect to the weights
    snip       images and labels: the sum of |w * dL/dw| (connection sensitivity)

`params` and `flops` (the baselines) come from the task's torch-free cost
(nas/evaluators/proxy.py, which makes the metrics of both). The loss of
grad_norm and snip is the task's own training loss (`Task.step`:
cross-entropy for classification).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from nas.evaluators.recipe import TRAINING_DEFAULTS
from nas.evaluators.training import device_for
from nas.spaces import make_space
from nas.tasks import Task

# What makes a network's prunable layers: their weights are what the
# per-weight proxies (synflow, snip, grad_norm) sum over, as in the papers.
WEIGHTED = (nn.Conv2d, nn.Linear)
# Activations whose input's sign is a unit's binary code (naswot): ReLU in the
# paper; the others a chain space can use, by the same sign.
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh, nn.LeakyReLU)
# jacov's regulariser of the correlation eigenvalues (Mellor et al. 2020, v1).
JACOV_EPSILON = 1e-5


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, WEIGHTED)]


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Synaptic flow (Tanaka et al., NeurIPS 2020; as a proxy: Abdelfattah et al.,
    ICLR 2021): with every parameter replaced by its absolute value, batch norm
    replaced by the identity and the network in float64, R = sum(f(1)) for an
    input of ones; the score is sum over weights of w * dR/dw. Data-free. Float64
    because the product of positive weights through a deep network overflows float32."""
    net = copy.deepcopy(model)
    for child in list(net.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                setattr(child, attr, nn.Identity())
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    device = next(net.parameters()).device
    out = net(torch.ones(1, *input_shape, dtype=torch.float64, device=device))
    out.sum().backward()
    return float(sum((w * w.grad).sum().item() for w in _weights(net) if w.grad is not None))


def naswot_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K[i, j] = number of units on which images i and j have the same binary code
    (N_A minus their Hamming distance), for codes of shape (images, units) in {0, 1}."""
    c = codes.to(torch.float64)
    return c @ c.T + (1 - c) @ (1 - c).T


def naswot_score(kernel: torch.Tensor) -> float:
    """log |det K|: large when the batch's images fall into different linear regions."""
    sign, logdet = torch.linalg.slogdet(kernel.to(torch.float64))
    return float(logdet) if float(sign) != 0 else -math.inf


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """NASWOT (Mellor et al., ICML 2021): the log-determinant of the kernel of the
    batch's binary activation codes, summed over every activation of the network
    (`naswot_kernel`). Images only; the network in training mode, as in the paper."""
    kernel = torch.zeros(len(images), len(images), dtype=torch.float64, device=images.device)

    def hook(_module, inputs, _output) -> None:
        nonlocal kernel
        kernel = kernel + naswot_kernel((inputs[0].detach().reshape(len(images), -1) > 0))

    net = copy.deepcopy(model)
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for h in handles:
            h.remove()
    return naswot_score(kernel.cpu())


def jacov_score(jacobians: np.ndarray) -> float:
    """-sum(log(v + k) + 1 / (v + k)) over the eigenvalues v of the correlation
    matrix of the rows (one flattened input gradient per image): largest when the
    rows are uncorrelated (every v = 1). NaN where a row is constant."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobians)
    if not np.all(np.isfinite(corr)):
        return math.nan
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + JACOV_EPSILON) + 1.0 / (v + JACOV_EPSILON)))


def jacov(model: nn.Module, images: torch.Tensor) -> float:
    """Jacobian covariance (Mellor et al., arXiv 2006.04647 v1, 2020): the input
    gradient of the summed outputs for each image of the batch, scored by
    `jacov_score`. Images only; the network in training mode."""
    net = copy.deepcopy(model)
    x = images.detach().clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    return jacov_score(x.grad.reshape(len(x), -1).double().cpu().numpy())


def _loss_gradients(model: nn.Module, task: Task, batch: Any, recipe: dict[str, Any]) -> nn.Module:
    """A copy of the network with the gradients of the task's loss on the batch."""
    net = copy.deepcopy(model)
    net.zero_grad(set_to_none=True)
    loss, _ = task.step(net, batch, recipe)
    loss.backward()
    return net


def grad_norm(model: nn.Module, task: Task, batch: Any, recipe: dict[str, Any]) -> float:
    """Gradient norm (Abdelfattah et al., ICLR 2021): the sum over convolutions and
    linear layers of ||dL/dw||, L the task's loss on one labelled mini-batch."""
    net = _loss_gradients(model, task, batch, recipe)
    return float(sum(w.grad.norm().item() for w in _weights(net) if w.grad is not None))


def snip(model: nn.Module, task: Task, batch: Any, recipe: dict[str, Any]) -> float:
    """SNIP's connection sensitivity (Lee, Ajanthan & Torr, ICLR 2019), summed over
    the weights as a proxy (Abdelfattah et al., ICLR 2021): sum |w * dL/dw| on one
    labelled mini-batch (the gradient of a mask of ones on each weight)."""
    net = _loss_gradients(model, task, batch, recipe)
    return float(sum((w * w.grad).abs().sum().item() for w in _weights(net) if w.grad is not None))


def _batch(task: Task, splits, batch_size: int, seed: int) -> Any:
    """The run's one mini-batch: `batch_size` training images drawn with the run seed."""
    loader = DataLoader(splits.train, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(int(seed)), collate_fn=task.collate)
    return next(iter(loader))


def network_proxies(model: nn.Module, names: Sequence[str], task: Task, batch: Any,
                    input_shape: tuple[int, ...], recipe: dict[str, Any]) -> dict[str, float]:
    """Each named proxy of one network (each on its own copy, so none sees another's changes)."""
    images = batch[0]
    compute: dict[str, Callable[[], float]] = {
        "synflow": lambda: synflow(model, input_shape),
        "naswot": lambda: naswot(model, images),
        "jacov": lambda: jacov(model, images),
        "grad_norm": lambda: grad_norm(model, task, batch, recipe),
        "snip": lambda: snip(model, task, batch, recipe),
    }
    return {name: compute[name]() for name in names}


def score(specs: Sequence[dict[str, Any]], task: Task, names: Sequence[str], batch_size: int,
          log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> list[dict[str, Any]]:
    """The network proxies `names` of every spec, each {"values": {name: value},
    "status": ok | oom, "seconds", "device"} (nas.evaluators.proxy.score makes
    the metrics). One process for all of them: the data is loaded once, and the
    batch is the same for every candidate of the run. A network that runs out of
    memory gets status oom and no values."""
    out: list[dict[str, Any]] = []
    if not specs:
        return out
    recipe = {**TRAINING_DEFAULTS, **(specs[0].get("training") or {})}
    torch.set_num_threads(int(recipe["threads"]))
    device = device_for(recipe["device"])
    splits = task.splits(int(specs[0]["run_seed"]))
    batch = task.to_device(_batch(task, splits, batch_size, int(specs[0]["run_seed"])), device)
    for spec in specs:
        start = time.perf_counter()
        found: dict[str, float] = {}
        status = "ok"
        try:
            space = make_space(spec["space"])
            torch.manual_seed(int(spec["seed"]))
            model = task.model(space, space.from_string(spec["arch"]), splits.info).to(device).train()
            found = network_proxies(model, names, task, batch, splits.info.input_shape, recipe)
        except (RuntimeError, MemoryError) as error:
            if not (isinstance(error, MemoryError) or "out of memory" in str(error).lower()):
                raise
            status = "oom"
        seconds = time.perf_counter() - start
        log(f"{spec.get('candidate', '')} {spec['arch']} {status} "
            + " ".join(f"{n} {v:.6g}" for n, v in found.items()) + f" {seconds:.3f} s")
        out.append({"values": found, "status": status, "seconds": seconds, "device": str(device)})
    return out
