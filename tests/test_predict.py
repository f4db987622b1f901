"""`predict` and `python -m nas predict`: image files through the exported model, prepared as its
card says, with onnxruntime and no torch by default; the same classes with --torch; images of the
wrong size or channels refused with what they have and what the model expects."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas import layout
from nas.export import export_model, read_model_card, write_model_card
from nas.io import ArtefactError, CorruptArtefact
from nas.predict import PredictError, predict
from nas.spaces import make_space

MEAN, STD = 0.5, 0.25
RGB_CLASSES = ["cat", "dog", "frog"]


def export(folder: Path, section: dict, arch: str, shape: tuple, classes: list[str], task: dict) -> torch.nn.Module:
    space = make_space(section)
    torch.manual_seed(0)
    model = space.build(space.from_string(arch), shape, len(classes))
    with torch.no_grad():  # BatchNorm statistics off their defaults, as after training
        model.train()(torch.randn(32, *shape) * 2)
    model.eval()
    example = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
    with contextlib.redirect_stderr(io.StringIO()):
        exports = export_model(model, example, folder)
    write_model_card(folder, {
        "format": 1, "run": "demo", "arch": arch, "space": {"name": space.name, **space.options()}, "task": task,
        "input_shape": list(shape), "classes": classes,
        "preprocess": {"pixels": 255, "resize": False, "mean": [MEAN] * shape[0], "std": [STD] * shape[0]},
        "trained_on": "train+val", "metrics": {"test_acc": 97.1}, "exports": exports,
    })
    return model


@pytest.fixture(scope="module")
def gray(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A digits-like model: 8x8 grayscale images, ten classes."""
    folder = tmp_path_factory.mktemp("gray")
    # A short chain: predicting does not depend on the space, and it exports fastest.
    model = export(folder, {"name": "chain", "filters": [4, 8]}, "conv3x3-8-s1-relu|avgpool3-s2|conv1x1-4-s1-silu",
                   (1, 8, 8), [str(i) for i in range(10)], {"name": "digits"})
    return folder, model


@pytest.fixture(scope="module")
def rgb(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """An RGB model: 8x8 colour images, three named classes."""
    folder = tmp_path_factory.mktemp("rgb")
    model = export(folder, {"name": "chain", "filters": [4, 8]}, "conv3x3-8-s1-relu|maxpool3-s2|conv1x1-4-s1-gelu",
                   (3, 8, 8), RGB_CLASSES, {"name": "cifar10"})
    return folder, model


def write_images(folder: Path, mode: str, count: int, size: tuple[int, int] = (8, 8), seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    paths = []
    for i in range(count):
        low = rng.integers(0, 200, size=channels or (1,))  # images of different brightness and colour
        pixels = (low + rng.integers(0, 56, size=(size[1], size[0], *channels))).astype(np.uint8)
        path = folder / f"{mode.lower()}{i}.png"
        Image.fromarray(pixels, mode).save(path)
        paths.append(path)
    return paths


def expected_classes(model: torch.nn.Module, paths: list[Path], names: list[str]) -> tuple[list[str], np.ndarray]:
    """The model's argmax on the images as the card prepares them, worked out here in torch."""
    x = torch.stack([torch.tensor(np.asarray(Image.open(p)), dtype=torch.float32) for p in paths]) / 255
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    with torch.no_grad():
        probs = torch.softmax(model((x - MEAN) / STD), dim=1).numpy()
    return [names[i] for i in probs.argmax(1)], probs


@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_predict_gives_the_models_class_with_onnx_and_with_torch(kind, request, tmp_path):
    folder, model = request.getfixturevalue(kind)
    names = read_model_card(folder)["classes"]
    paths = write_images(tmp_path, "L" if kind == "gray" else "RGB", 6)
    want, probs = expected_classes(model, paths, names)
    assert len(set(want)) > 1  # the images are not all one class: the test can tell them apart

    got = predict(folder, paths)
    assert [r["image"] for r in got] == [str(p) for p in paths]
    assert [r["classes"][0][0] for r in got] == want
    np.testing.assert_allclose([r["classes"][0][1] for r in got], probs.max(1), atol=1e-5)
    with_torch = predict(folder, paths, use_torch=True)
    assert [r["classes"][0][0] for r in with_torch] == want

    top = predict(folder, paths[:1], top=3)[0]["classes"]
    assert [name for name, _ in top] == [names[i] for i in np.argsort(-probs[0])[:3]]
    assert top[0][1] >= top[1][1] >= top[2][1]
    with pytest.raises(PredictError, match=f"top must be between 1 and {len(names)}"):
        predict(folder, paths, top=len(names) + 1)


def test_wrong_size_is_refused_unless_the_card_resizes(gray, tmp_path):
    folder, model = gray
    big = write_images(tmp_path, "L", 1, size=(12, 10))[0]
    with pytest.raises(PredictError) as info:
        predict(folder, [big])
    message = str(info.value)
    assert str(big) in message and "12x10 pixels" in message and "expects 8x8" in message, message

    resized = tmp_path / "resized"
    shutil.copytree(folder, resized)
    card = read_model_card(resized)
    write_model_card(resized, {**card, "preprocess": {**card["preprocess"], "resize": True}})
    small = Image.open(big).resize((8, 8), Image.Resampling.BILINEAR)
    small.save(tmp_path / "small.png")
    # resize: true does what Pillow's bilinear resize does, then the same as for an 8x8 image.
    want = predict(resized, [tmp_path / "small.png"], top=3)[0]["classes"]
    assert predict(resized, [big], top=3)[0]["classes"] == want


def test_wrong_channels_are_refused_with_what_the_model_expects(gray, rgb, tmp_path):
    colour = write_images(tmp_path, "RGB", 1)[0]
    with pytest.raises(PredictError, match=r"rgb0.png: PIL mode 'RGB', 8-bit RGB, 3 channels; the model expects "
                                           r"8-bit grayscale images, 1 channel \(PIL mode 'L'\)"):
        predict(gray[0], [colour])
    grey = write_images(tmp_path, "L", 1)[0]
    with pytest.raises(PredictError, match=r"l0.png: PIL mode 'L', 8-bit grayscale, 1 channel; the model expects "
                                           r"8-bit RGB images, 3 channels \(PIL mode 'RGB'\)"):
        predict(rgb[0], [grey])
    alpha = write_images(tmp_path, "RGBA", 1)[0]
    with pytest.raises(PredictError, match=r"PIL mode 'RGBA', RGB with alpha, 4 channels;.*convert\('RGB'\)"):
        predict(rgb[0], [alpha])


def test_missing_or_unreadable_images_and_models_are_named(gray, tmp_path):
    folder, _ = gray
    with pytest.raises(PredictError, match="nothere.png: image not found"):
        predict(folder, [tmp_path / "nothere.png"])
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(PredictError, match="text.png: not an image Pillow can read"):
        predict(folder, [tmp_path / "text.png"])
    with pytest.raises(ArtefactError, match="model.yaml: file not found"):
        predict(tmp_path, [tmp_path / "text.png"])

    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    image = write_images(tmp_path, "L", 1)[0]
    onnx = Path(layout.model_onnx(damaged))
    onnx.write_bytes(onnx.read_bytes()[:1000])
    with pytest.raises(CorruptArtefact, match="model.onnx: onnxruntime cannot load it"):
        predict(damaged, [image])
    onnx.unlink()
    with pytest.raises(ArtefactError, match="model.onnx: file not found .* --torch"):
        predict(damaged, [image])
    assert predict(damaged, [image], use_torch=True) == predict(folder, [image], use_torch=True)


def test_the_default_path_imports_no_torch(gray, tmp_path):
    folder, _ = gray
    image = write_images(tmp_path, "L", 1)[0]
    code = ("import sys; from nas.predict import predict; "
            f"print(predict({str(folder)!r}, [{str(image)!r}])[0]['classes'][0][0]); "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [predict(folder, [image])[0]["classes"][0][0], "False"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", "predict", *args], capture_output=True, text=True, cwd=cwd)


def test_the_command_prints_a_line_per_image_and_class_and_exits_2_on_errors(gray, tmp_path):
    folder, model = gray
    paths = write_images(tmp_path, "L", 3)
    proc = cli(str(folder), *map(str, paths), "--top", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in paths for _ in range(2)]
    results = predict(folder, paths, top=2)
    assert [(r[1], float(r[2])) for r in rows] == \
        [(name, round(p, 4)) for result in results for name, p in result["classes"]]

    proc = cli(str(folder), str(paths[0]), "--torch", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\t")[1] == results[0]["classes"][0][0]

    big = write_images(tmp_path, "L", 1, size=(9, 9), seed=1)[0]
    proc = cli(str(folder), str(paths[0]), str(big), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "9x9 pixels" in proc.stderr and "Traceback" not in proc.stderr
