"""Classify image files with an exported final model (`python -m nas predict`).

A segmentation model's logits have a class axis per pixel: each image then
gets its mask (the most probable class of each pixel, at the input's size)
and its classes ranked by the share of pixels they take.

The default path runs model.onnx with onnxruntime and imports no torch, so a
machine that only predicts needs numpy, Pillow and onnxruntime. Images are
prepared exactly as the model card's `preprocess` says (nas/export.py), in
numpy, and checked first against the card's input: an image of the wrong
size (when the card does not resize) or with the wrong channels is refused,
never silently converted. `use_torch` runs the same array through the
PyTorch network (nas.export.load_model) instead; both give the same classes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas import layout
from nas.export import INPUT_NAME, load_model, read_model_card
from nas.io import ArtefactError, CorruptArtefact

# The PIL mode an image must have for each channel count of the model's input.
MODES = {1: ("L", "8-bit grayscale"), 3: ("RGB", "8-bit RGB")}


class PredictError(ValueError):
    """An image the model cannot take (missing, unreadable, wrong size or channels)."""


def predict(folder: str | Path, images: Sequence[str | os.PathLike], use_torch: bool = False,
            top: int = 1) -> list[dict[str, Any]]:
    """For each image, {"image": path, "classes": [(class name, probability), ...]}:
    its `top` most probable classes, most probable first."""
    card = read_model_card(folder)
    classes = [str(c) for c in card["classes"]]
    if not 1 <= top <= len(classes):
        raise PredictError(f"top must be between 1 and {len(classes)} (the model's classes), got {top}")
    if not images:
        return []
    batch = np.stack([prepare(path, card) for path in images])
    logits = _torch_logits(folder, batch) if use_torch else _onnx_logits(folder, batch)
    if logits.ndim == 4:
        return [segmented(str(path), one, classes, top) for path, one in zip(images, logits)]
    probs = softmax(logits)
    out = []
    for path, p in zip(images, probs):
        order = np.argsort(-p, kind="stable")[:top]  # ties: the lower class index first
        out.append({"image": str(path), "classes": [(classes[i], float(p[i])) for i in order]})
    return out


def segmented(path: str, logits: np.ndarray, classes: Sequence[str], top: int) -> dict[str, Any]:
    """One image's (classes, height, width) logits as {"image", "mask": (height, width)
    uint8 class indices, "classes": the `top` classes with the largest share of its
    pixels, largest first}."""
    mask = logits.argmax(0).astype(np.uint8)
    shares = np.bincount(mask.ravel(), minlength=len(classes)) / mask.size
    order = np.argsort(-shares, kind="stable")[:top]
    return {"image": path, "mask": mask, "classes": [(classes[i], float(shares[i])) for i in order]}


def write_mask(mask: np.ndarray, folder: str | Path, image: str | os.PathLike) -> Path:
    """The mask as an 8-bit PNG of class indices, `folder`/<image's stem>.png."""
    from PIL import Image

    path = Path(folder) / f"{Path(image).stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask, mode="L").save(path)
    return path


def prepare(path: str | os.PathLike, card: dict[str, Any]) -> np.ndarray:
    """One image file as the model's float32 (channels, height, width) input."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = card["input_shape"]
    pre = card["preprocess"]
    mode, kind = MODES.get(channels, (None, f"{channels}-channel"))
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError:
        raise PredictError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError) as e:
        raise PredictError(f"{path}: not an image Pillow can read ({e})") from None
    if mode is None:
        raise PredictError(f"{path}: the model takes {channels}-channel images, which image files cannot hold")
    if image.mode != mode:
        raise PredictError(
            f"{path}: PIL mode {image.mode!r}, {_describe_mode(image.mode)}; the model expects {kind} images, "
            f"{channels} channel{'s' if channels > 1 else ''} (PIL mode {mode!r}): convert it first, "
            f"e.g. Image.open(path).convert({mode!r})"
        )
    if image.size != (width, height):
        if not pre["resize"]:
            raise PredictError(
                f"{path}: {image.width}x{image.height} pixels; the model expects {width}x{height} "
                "(width x height) and its card does not resize (preprocess.resize: false)"
            )
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    x = np.asarray(image, dtype=np.float32) / np.float32(pre["pixels"])
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    mean = np.asarray(pre["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(pre["std"], dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def _describe_mode(mode: str) -> str:
    """What an image of a PIL mode holds, in words."""
    kinds = {"1": "1-bit black and white", "L": "8-bit grayscale, 1 channel", "LA": "grayscale with alpha, 2 channels",
             "P": "palette colours", "RGB": "8-bit RGB, 3 channels", "RGBA": "RGB with alpha, 4 channels",
             "CMYK": "CMYK, 4 channels", "I;16": "16-bit grayscale", "I": "32-bit integer pixels",
             "F": "32-bit float pixels"}
    return kinds.get(mode, "an unusual mode")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _onnx_logits(folder: str | Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime

    path = Path(layout.model_onnx(folder))
    if not path.is_file():
        raise ArtefactError(f"{path}: file not found (the model was exported without ONNX?); "
                            "predict with --torch instead, which uses model.pt")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors: a truncated or edited file
        raise CorruptArtefact(path, f"onnxruntime cannot load it ({str(e).strip().splitlines()[0][:300]})") from None
    return session.run(None, {INPUT_NAME: batch})[0]


def _torch_logits(folder: str | Path, batch: np.ndarray) -> np.ndarray:
    import torch

    model = load_model(folder)
    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()


__all__ = ["MODES", "PredictError", "predict", "prepare", "segmented", "softmax", "write_mask"]
