"""Semantic segmentation: a class for every pixel.

The network is the candidate's backbone (`SearchSpace.build_backbone`, whose
stages give feature maps at several strides) with a light decoder, its logits
upsampled to the input's size:

    lraspp  (Howard et al. 2019, "Searching for MobileNetV3", the Lite R-ASPP
            head): the last stage through a 1x1 conv, gated by a global-pooled
            1x1 conv and a sigmoid, upsampled to the first stage and classed
            there, plus a 1x1 classifier of the first stage itself
    fcn     (Long et al. 2015, "Fully Convolutional Networks"): a 3x3 conv, BN
            and ReLU on the last stage, then a 1x1 classifier

Training is per-pixel cross-entropy over the labelled pixels (IGNORE_INDEX
marks the others: VOC's object borders, Cityscapes' unlabelled ids). The
metrics come from one confusion matrix over the whole split, as the VOC,
Cityscapes and ADE20K protocols compute them (not a mean over images):
mIoU is the mean over classes of TP / (TP + FP + FN), leaving out a class
that is neither in the split's labels nor in its predictions; pixel accuracy
is the share of labelled pixels classed right. Both are in percent.

A segmentation task's data is pairs (image, mask): an image tensor (C, H, W)
and a mask of class indices (H, W). Resizing and flips move a mask with its
image (`PairTransform`, `Flipped`), nearest-neighbour for the mask so that
no pixel gets a class that is no class's mix. Every trained candidate draws
its predictions on the first PREDICTION_IMAGES validation images
(evals/{c}/predictions.png: image, true mask, predicted mask).
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from nas import layout
from nas.io import atomic_write_bytes
from nas.objectives import register
from nas.options import integer
from nas.spaces.base import conv_out
from nas.tasks.base import Task, TaskError, TaskInfo
from nas.tasks.classification import TRAIN_LOSS, VAL_LOSS

if TYPE_CHECKING:
    import torch

    from nas.spaces.base import Genome, SearchSpace, Stage

IGNORE_INDEX = 255
DECODERS = ("lraspp", "fcn")
DEFAULT_DECODER_CHANNELS = 32
PREDICTION_IMAGES = 4

VAL_MIOU = register("val_miou", "max", "%", "mean intersection over union of the classes on the validation split")
# Selecting on the test split would leak it into the search: reported only.
TEST_MIOU = register("test_miou", "max", "%", "mean intersection over union on the test split", selectable=False)
VAL_PIXEL_ACC = register("val_pixel_acc", "max", "%", "labelled validation pixels classed right")
TEST_PIXEL_ACC = register("test_pixel_acc", "max", "%", "labelled test pixels classed right", selectable=False)


# -- the metrics, from a confusion matrix (numpy: the hand computations test this) --------


def confusion(target: np.ndarray, predicted: np.ndarray, classes: int, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """(classes, classes) counts of pixels, row the true class, column the predicted
    one; pixels labelled `ignore` (or any label outside the classes) are left out."""
    target, predicted = np.asarray(target).ravel(), np.asarray(predicted).ravel()
    keep = (target != ignore) & (target >= 0) & (target < classes)
    index = target[keep].astype(np.int64) * classes + predicted[keep].astype(np.int64)
    return np.bincount(index, minlength=classes * classes).reshape(classes, classes)


def miou(matrix: np.ndarray) -> float:
    """Mean IoU in percent over the classes that occur in the labels or the
    predictions (NaN when no pixel is labelled)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - hits
    present = union > 0
    return float(100.0 * np.mean(hits[present] / union[present])) if present.any() else float("nan")


def pixel_accuracy(matrix: np.ndarray) -> float:
    matrix = np.asarray(matrix, dtype=np.float64)
    total = matrix.sum()
    return float(100.0 * np.trace(matrix) / total) if total else float("nan")


# -- the decoders' size, without torch (the cheap params and flops of a candidate) --------


def decoder_cost(decoder: str, stages: Sequence["Stage"], input_shape: tuple[int, int, int], channels: int,
                 classes: int) -> dict[str, int]:
    """Parameters and multiply-accumulates of the decoder on these backbone stages
    (nas.evaluators.flops counts the same on the built module: convolutions only)."""
    _, height, width = input_shape
    high, low = stages[-1], stages[0]
    high_pixels = conv_out(height, high.stride) * conv_out(width, high.stride)
    low_pixels = conv_out(height, low.stride) * conv_out(width, low.stride)
    if decoder == "fcn":
        params = 9 * high.channels * channels + 2 * channels + channels * classes + classes
        return {"params": params, "flops": (9 * high.channels * channels + channels * classes) * high_pixels}
    # lraspp: 1x1 conv + BN, the gate's 1x1 conv (on a 1x1 map), two 1x1 classifiers with bias.
    params = (high.channels * channels + 2 * channels + high.channels * channels
              + channels * classes + classes + low.channels * classes + classes)
    flops = high.channels * channels * high_pixels + high.channels * channels + (channels + low.channels) * classes * low_pixels
    return {"params": params, "flops": flops}


@functools.lru_cache(maxsize=None)
def torch_modules() -> SimpleNamespace:
    """The decoders and the segmenter, defined on first use (importing this module stays torch-free)."""
    from torch import nn
    from torch.nn import functional as F

    class LRASPP(nn.Module):
        def __init__(self, low: int, high: int, channels: int, classes: int) -> None:
            super().__init__()
            self.reduce = nn.Sequential(nn.Conv2d(high, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
            self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high, channels, 1, bias=False), nn.Sigmoid())
            self.high_classifier = nn.Conv2d(channels, classes, 1)
            self.low_classifier = nn.Conv2d(low, classes, 1)

        def forward(self, features):
            low, high = features[0], features[-1]
            x = self.reduce(high) * self.gate(high)
            x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
            return self.high_classifier(x) + self.low_classifier(low)

    class FCNHead(nn.Module):
        def __init__(self, high: int, channels: int, classes: int) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(high, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                      nn.ReLU(), nn.Conv2d(channels, classes, 1))

        def forward(self, features):
            return self.body(features[-1])

    class Segmenter(nn.Module):
        """A backbone and a decoder; logits (B, classes, H, W) at the input's size."""

        def __init__(self, backbone: nn.Module, decoder: nn.Module) -> None:
            super().__init__()
            self.backbone, self.decoder = backbone, decoder

        def forward(self, x):
            logits = self.decoder(self.backbone(x))
            return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    return SimpleNamespace(LRASPP=LRASPP, FCNHead=FCNHead, Segmenter=Segmenter)


def segmenter(backbone: "torch.nn.Module", decoder: str, channels: int, classes: int) -> "torch.nn.Module":
    parts = torch_modules()
    stages = backbone.stages
    head = (parts.FCNHead(stages[-1].channels, channels, classes) if decoder == "fcn"
            else parts.LRASPP(stages[0].channels, stages[-1].channels, channels, classes))
    return parts.Segmenter(backbone, head)


# -- pairs: transforms that move a mask with its image -------------------------------


class PairTransform:
    """(PIL image, PIL mask) -> (normalised float tensor (C, size, size), long mask
    (size, size)): the image resized bilinearly, the mask by nearest neighbour, the
    mask's values mapped through `lut` (a 256-entry table: label id -> class, or
    IGNORE_INDEX). size None keeps the image's own size."""

    def __init__(self, size: int | None, mean: Sequence[float], std: Sequence[float],
                 lut: np.ndarray | None = None, mode: str = "RGB") -> None:
        self.size, self.mean, self.std, self.lut, self.mode = size, list(mean), list(std), lut, mode

    def __call__(self, image: Any, mask: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch
        from PIL import Image
        from torchvision.transforms import functional as TF

        image = image.convert(self.mode)
        if self.size is not None:
            image = image.resize((self.size, self.size), Image.BILINEAR)
            mask = mask.resize((self.size, self.size), Image.NEAREST)
        labels = np.asarray(mask, dtype=np.uint8)
        if labels.ndim != 2:
            raise TaskError(f"a segmentation mask must be one channel of class ids, got shape {labels.shape}")
        if self.lut is not None:
            labels = self.lut[labels]
        x = TF.normalize(TF.to_tensor(image), self.mean, self.std)
        return x, torch.from_numpy(labels.astype(np.int64))


def flip_pair(image: "torch.Tensor", mask: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """The pair mirrored left to right: the image's last axis and the mask's."""
    return image.flip(-1), mask.flip(-1)


class Flipped:
    """A training split whose pairs are flipped left to right with probability 1/2
    (torch's global generator, which the training seeds)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        import torch

        image, mask = self.dataset[i]
        return flip_pair(image, mask) if bool(torch.rand(()) < 0.5) else (image, mask)


def collate_pairs(batch: list) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Images and masks stacked; pairs of different sizes (image_size: null) padded
    at the bottom and right to the largest, images with 0, masks with IGNORE_INDEX."""
    import torch

    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], height, width, dtype=batch[0][0].dtype)
    masks = torch.full((len(batch), height, width), IGNORE_INDEX, dtype=torch.long)
    for i, (image, mask) in enumerate(batch):
        images[i, :, : image.shape[-2], : image.shape[-1]] = image
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks


# -- the task ---------------------------------------------------------------------


class SegmentationTask(Task):
    """What every segmentation data set shares: the decoder, the loss, the metrics.

    Options: decoder (lraspp | fcn), decoder_channels (the decoder's width),
    flip (training pairs mirrored at random; off by default, so that a run's
    results stay what they were unless asked)."""

    options = {"decoder": "lraspp", "decoder_channels": DEFAULT_DECODER_CHANNELS, "flip": False}
    metrics = (VAL_MIOU, TEST_MIOU, VAL_PIXEL_ACC, TEST_PIXEL_ACC, VAL_LOSS, TRAIN_LOSS)
    primary = "val_miou"
    epoch_columns = ("train_loss", "train_pixel_acc", "val_loss", "val_miou", "val_pixel_acc")
    collate = staticmethod(collate_pairs)

    def check_options(self) -> None:
        decoder = self.option("decoder")
        if decoder not in DECODERS:
            raise TaskError(f"task.decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        integer("task", "decoder_channels", self.option("decoder_channels"), 1, TaskError)
        if not isinstance(self.option("flip"), bool):
            raise TaskError(f"task.flip must be true or false, got {self.cfg['flip']!r}")

    def _decoder(self) -> tuple[str, int]:
        return str(self.option("decoder")), int(self.option("decoder_channels"))

    def model(self, space: "SearchSpace", genome: "Genome", info: TaskInfo) -> "torch.nn.Module":
        decoder, channels = self._decoder()
        return segmenter(space.build_backbone(genome, info.input_shape), decoder, channels, info.num_classes)

    def cost(self, space: "SearchSpace", genome: "Genome", info: TaskInfo) -> dict[str, int]:
        decoder, channels = self._decoder()
        backbone = space.backbone_cost(genome, info.input_shape)
        head = decoder_cost(decoder, backbone.stages, info.input_shape, channels, info.num_classes)
        return {"params": backbone.params + head["params"], "flops": backbone.flops + head["flops"]}

    def training_split(self, dataset: Any) -> Any:
        """The training pairs, flipped at random with task.flip."""
        return Flipped(dataset) if self.option("flip") else dataset

    def step(self, model: "torch.nn.Module", batch: Any, recipe: dict[str, Any]) -> tuple["torch.Tensor", dict[str, int]]:
        from torch import nn

        x, y = batch
        logits = model(x)
        labelled = y != IGNORE_INDEX
        pixels = int(labelled.sum().item())
        # A sum over the labelled pixels divided by their count: a batch of only
        # ignored pixels has loss 0, not the NaN of an empty mean.
        loss = nn.functional.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum",
                                           label_smoothing=recipe["label_smoothing"]) / max(pixels, 1)
        correct = int(((logits.argmax(1) == y) & labelled).sum().item())
        return loss, {"count": pixels, "correct": correct}

    def train_summary(self, loss_sum: float, sums: dict[str, int]) -> dict[str, float]:
        count = max(sums["count"], 1)
        return {"train_loss": loss_sum / count, "train_pixel_acc": 100.0 * sums["correct"] / count}

    def evaluate(self, model: "torch.nn.Module", loader: Any, device: "torch.device") -> dict[str, float]:
        import torch
        from torch import nn

        classes = self.describe().num_classes
        model.eval()
        matrix = torch.zeros(classes * classes, dtype=torch.long)
        loss_sum, pixels = 0.0, 0
        with torch.no_grad():
            for batch in loader:
                x, y = self.to_device(batch, device)
                logits = model(x)
                loss_sum += nn.functional.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum").item()
                labelled = (y != IGNORE_INDEX) & (y < classes)
                pixels += int(labelled.sum().item())
                pairs = y[labelled] * classes + logits.argmax(1)[labelled]
                matrix += torch.bincount(pairs, minlength=classes * classes).cpu()
        matrix = matrix.reshape(classes, classes).numpy()
        return {"loss": loss_sum / max(pixels, 1), "miou": miou(matrix), "pixel_acc": pixel_accuracy(matrix)}

    def draw(self, model: "torch.nn.Module", splits: Any, device: "torch.device", folder: str | Path) -> None:
        """evals/{c}/predictions.png: the first PREDICTION_IMAGES validation images,
        their true masks and the network's, one row each."""
        import torch

        pairs = [splits.val[i] for i in range(min(PREDICTION_IMAGES, len(splits.val)))]
        if not pairs:
            return
        images, masks = collate_pairs(pairs)
        model.eval()
        with torch.no_grad():
            predicted = model(images.to(device)).argmax(1).cpu()
        prediction_grid(images.numpy(), masks.numpy(), predicted.numpy(), layout.predictions_in(folder))


def palette() -> np.ndarray:
    """(256, 3) colours: class 0 black, then the bit-interleaved colours of the VOC
    development kit's colour map (distinct for neighbouring labels), IGNORE_INDEX white."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        value, r, g, b = label, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colours[label] = (r, g, b)
    colours[IGNORE_INDEX] = 255
    return colours


PICTURE_SIDE = 96


def prediction_grid(images: np.ndarray, truth: np.ndarray, predicted: np.ndarray, path: str | Path) -> None:
    """A PNG of one row per image: the image (its own range stretched to 0..255),
    the true mask and the predicted one in the palette's colours, each scaled up
    (nearest neighbour) to about PICTURE_SIDE pixels, under a header."""
    from PIL import Image, ImageDraw

    colours = palette()
    rows = []
    for image, true, guess in zip(images, truth, predicted):
        low, high = float(image.min()), float(image.max())
        grey = (image - low) / (high - low) if high > low else np.zeros_like(image)
        pixels = (255 * grey).astype(np.uint8).transpose(1, 2, 0)
        pixels = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
        rows.append([pixels, colours[true.astype(np.uint8)], colours[guess.astype(np.uint8)]])
    height, width = images.shape[-2:]
    scale = max(1, PICTURE_SIDE // max(height, width))
    gap, header = 4, 16
    cell_h, cell_w = height * scale, width * scale
    canvas = Image.new("RGB", (3 * cell_w + 4 * gap, header + len(rows) * (cell_h + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(("image", "true mask", "predicted")):
        draw.text((gap + column * (cell_w + gap), 2), title, fill="black")
    for r, row in enumerate(rows):
        for column, picture in enumerate(row):
            tile = Image.fromarray(np.ascontiguousarray(picture)).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (gap + column * (cell_w + gap), header + r * (cell_h + gap)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
