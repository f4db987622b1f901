"""Training-time augmentation of whole batches, on the device that trains.

`task.augment: crop_flip` is the standard recipe of CIFAR-sized image
classification (Krizhevsky et al. 2012, "ImageNet Classification with Deep
Convolutional Neural Networks"; He et al. 2016, "Deep Residual Learning for
Image Recognition"; NAS-Bench-201's training recipe, Dong & Yang 2020): each
image padded by `padding_for(side)` black pixels on every side, a random crop
of its own size taken, and mirrored left to right with probability 1/2.

The draws (`draw_crop_flip`) come from a CPU generator, so a run on the CPU is
the same on every machine and a checkpoint can keep the generator's state;
the crop itself (`crop_flip`) is one gather on the batch's device.
`task.augment: none` (the default) draws nothing: results stay those of before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch

AUGMENTS = ("none", "crop_flip")


def padding_for(side: int) -> int:
    """Pixels padded on each side: an eighth of the image's side, at least 1
    (4 at 32 x 32, the published recipe's; 1 at the digits' 8 x 8)."""
    return max(1, round(side / 8))


def draw_crop_flip(n: int, padding: int, generator: "torch.Generator") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Each image's crop offset (n, 2: row, column, in 0..2 x padding) and whether it is mirrored (n,)."""
    import torch

    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return offsets, flips


def crop_flip(x: "torch.Tensor", offsets: "torch.Tensor", flips: "torch.Tensor", padding: int,
              fill: Sequence[float]) -> "torch.Tensor":
    """The batch `x` (N, C, H, W) padded by `padding` pixels of `fill` (a value per
    channel), cropped back to H x W at `offsets` and mirrored where `flips`; a new tensor."""
    import torch

    n, c, h, w = x.shape
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    padded = torch.as_tensor(fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1).repeat(
        n, 1, h + 2 * padding, w + 2 * padding)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    picked = padded.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None],
                                        cols[:, None, :]]  # (N, H, W, C)
    return picked.permute(0, 3, 1, 2).contiguous()


class CropFlip:
    """crop_flip with its draws: what a task's `augmenter` hands the training loop."""

    def __init__(self, side: int, fill: Sequence[float]) -> None:
        self.padding, self.fill = padding_for(side), list(fill)

    def __call__(self, x: "torch.Tensor", generator: "torch.Generator") -> "torch.Tensor":
        offsets, flips = draw_crop_flip(len(x), self.padding, generator)
        return crop_flip(x, offsets, flips, self.padding, self.fill)


def black(preprocess: dict) -> list[float]:
    """Each channel's network input for a black pixel: 0 through the task's normalisation."""
    return [(0.0 - m) / s for m, s in zip(preprocess["mean"], preprocess["std"])]
