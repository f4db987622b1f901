"""The final model's files: every space exports to model.pt, model.pt2 and model.onnx with the
network's outputs; a failed export keeps what came before it; the card loads the network back,
and a damaged one (or damaged weights) is named, never a traceback from inside torch."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import layout
from nas.export import (ONNX_TOLERANCE, ExportError, export_model, load_model, read_model_card,
                        write_model_card)
from nas.io import ArtefactError, CorruptArtefact, write_yaml
from nas.spaces import make_space

# Every operation of each shipped space, in one network.
SPACES = {
    "nb201": ({"name": "nb201", "channels": 4, "cells_per_stage": 1},
              "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
              (1, 8, 8)),
    "chain": ({"name": "chain", "max_layers": 7, "filters": [4, 8],
               "activations": ["relu", "gelu", "silu", "tanh", "elu"]},
              "conv3x3-4-s1-relu|conv3x3-8-s2-gelu|maxpool3-s1|conv1x1-4-s1-silu|avgpool3-s2|"
              "conv5x5-8-s1-tanh|conv3x3-4-s1-elu",
              (3, 9, 9)),
}


def build(name: str, classes: int = 10, seed: int = 0) -> tuple[torch.nn.Module, dict, str, tuple]:
    """A small trained-looking network: BatchNorm statistics moved off their defaults."""
    section, arch, shape = SPACES[name]
    space = make_space(section)
    torch.manual_seed(seed)
    model = space.build(space.from_string(arch), shape, classes)
    with torch.no_grad():
        model.train()(torch.randn(32, *shape) * 2 + 0.5)
    return model.eval(), {"name": space.name, **space.options()}, arch, shape


def card_for(space: dict, arch: str, shape: tuple, exports: dict, classes: int = 10) -> dict:
    return {"format": 1, "run": "demo", "arch": arch, "space": space, "task": {"name": "digits"},
            "input_shape": list(shape), "classes": [str(i) for i in range(classes)],
            "preprocess": {"pixels": 255, "resize": False, "mean": [0.5] * shape[0], "std": [0.25] * shape[0]},
            "trained_on": "train+val", "metrics": {"test_acc": 97.1}, "exports": exports}


@pytest.fixture(scope="module", params=sorted(SPACES))
def exported(request, tmp_path_factory) -> dict:
    """One export of each space (module scope: an export takes seconds)."""
    model, space, arch, shape = build(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    example = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        exports = export_model(model, example, folder)
    write_model_card(folder, card_for(space, arch, shape, exports))
    return {"model": model, "folder": folder, "shape": shape, "exports": exports, "stdout": out.getvalue(),
            "stderr": err.getvalue(), "space": space, "arch": arch}


def images(shape: tuple, n: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


def test_every_space_exports_the_networks_outputs(exported):
    import onnxruntime

    folder, model, shape = exported["folder"], exported["model"], exported["shape"]
    fresh, *_ = build("nb201" if shape[0] == 1 else "chain", seed=7)
    fresh.load_state_dict(torch.load(layout.model_state(folder), weights_only=True))
    program = torch.export.load(layout.model_program(folder)).module()
    session = onnxruntime.InferenceSession(layout.model_onnx(folder), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch dimension stays free in both exports
        x = images(shape, batch)
        want = logits(model, x)
        np.testing.assert_array_equal(logits(fresh.eval(), x), want)
        with torch.no_grad():
            np.testing.assert_allclose(program(x).numpy(), want, atol=1e-6, rtol=0)
        np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], want, atol=ONNX_TOLERANCE, rtol=0)

    onnx_entry = exported["exports"]["onnx"]
    assert onnx_entry["file"] == "model.onnx" and onnx_entry["exporter"] == "torch.onnx.export(dynamo=True)"
    assert isinstance(onnx_entry["opset"], int) and onnx_entry["opset"] >= 18
    assert onnx_entry["runtime"].startswith("onnxruntime ") and onnx_entry["checked_on"] == "16 validation images"
    assert 0 <= onnx_entry["max_abs_diff"] <= ONNX_TOLERANCE
    assert exported["exports"]["exported_program"]["file"] == "model.pt2"
    assert exported["exports"]["exported_program"]["max_abs_diff"] <= 1e-6


def test_the_log_has_a_line_per_file_and_no_exporter_chatter(exported):
    assert "[torch.onnx]" not in exported["stdout"] + exported["stderr"]
    lines = exported["stderr"].splitlines()
    for name in ("model.pt", "model.pt2", "model.onnx"):
        assert any(line.startswith(f"{name}: written in ") for line in lines), lines


def test_the_card_loads_the_network_back_in_each_of_its_three_forms(exported):
    folder, model, shape = exported["folder"], exported["model"], exported["shape"]
    card = read_model_card(folder)
    assert card["files"] == {"state_dict": "model.pt", "exported_program": "model.pt2", "onnx": "model.onnx"}
    assert card["arch"] == exported["arch"] and card["exports"] == exported["exports"]
    x = images(shape, 3)
    loaded = load_model(folder)
    assert loaded.training is False
    np.testing.assert_array_equal(logits(loaded, x), logits(model, x))

    # The card's own lines, run as written: with snakenas, with PyTorch only, with onnxruntime.
    text = card["load"]
    assert f'"{Path(folder).as_posix()}/model.pt2"' in text
    forms = text.split("# with ")[1:]
    assert len(forms) == 3
    for form in forms:
        names = {"images": x.numpy() if "onnxruntime" in form else x}
        with torch.no_grad():
            exec(form.split("\n", 1)[1], names)
        got = names["logits"] if isinstance(names["logits"], np.ndarray) else names["logits"].numpy()
        np.testing.assert_allclose(got, logits(model, x), atol=ONNX_TOLERANCE, rtol=0)


class NoOnnx(torch.nn.Module):
    """A network with an operation the ONNX exporter cannot translate (torch 2.14, onnxscript 0.7)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return torch.special.airy_ai(self.conv(x)).mean((2, 3))


def test_onnx_false_exports_without_trying_onnx(tmp_path):
    exports = export_model(NoOnnx().eval(), torch.randn(8, 1, 8, 8), tmp_path, onnx=False)
    assert exports["onnx"] == {"skipped": "final.onnx is false"}
    assert Path(layout.model_program(tmp_path)).is_file() and not Path(layout.model_onnx(tmp_path)).exists()


def test_onnx_failure_names_the_operation_and_keeps_model_pt_and_pt2(tmp_path):
    model, example = NoOnnx().eval(), torch.randn(8, 1, 8, 8)
    with pytest.raises(ExportError) as info:
        export_model(model, example, tmp_path)
    message = str(info.value)
    assert "aten.special_airy_ai" in message and "final.onnx: false" in message, message
    assert "model.pt and" in message and "model.pt2 were written" in message
    assert Path(layout.model_state(tmp_path)).is_file() and Path(layout.model_program(tmp_path)).is_file()
    assert not Path(layout.model_onnx(tmp_path)).exists()
    program = torch.export.load(layout.model_program(tmp_path))
    with torch.no_grad():
        np.testing.assert_array_equal(program.module()(example).numpy(), model(example).numpy())


class DataDependent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):
        y = self.lin(x)
        return y if y.sum() > 0 else -y  # a branch on the data: torch.export cannot capture it


def test_torch_export_failure_keeps_model_pt(tmp_path):
    with pytest.raises(ExportError, match="torch.export could not capture") as info:
        export_model(DataDependent().eval(), torch.randn(8, 4), tmp_path)
    assert "model.pt was" in str(info.value)
    assert Path(layout.model_state(tmp_path)).is_file()
    assert not Path(layout.model_program(tmp_path)).exists() and not Path(layout.model_onnx(tmp_path)).exists()


def test_a_card_without_onnx_lists_no_onnx(tmp_path):
    _, space, arch, shape = build("nb201")
    exports = {"exported_program": {"file": "model.pt2", "max_abs_diff": 0.0},
               "onnx": {"skipped": "final.onnx is false"}}
    write_model_card(tmp_path, card_for(space, arch, shape, exports))
    card = read_model_card(tmp_path)
    assert "onnx" not in card["files"] and "onnxruntime" not in card["load"]
    assert card["exports"]["onnx"] == {"skipped": "final.onnx is false"}
    with pytest.raises(ExportError, match="lacks metrics"):
        write_model_card(tmp_path, {k: v for k, v in card_for(space, arch, shape, exports).items() if k != "metrics"})


@pytest.fixture
def weights(tmp_path, exported) -> Path:
    """A copy of an exported folder (card and model.pt) to damage."""
    shutil.copy(layout.model_card(exported["folder"]), layout.model_card(tmp_path))
    shutil.copy(layout.model_state(exported["folder"]), layout.model_state(tmp_path))
    return tmp_path


def test_damaged_weights_are_named(weights):
    path = Path(layout.model_state(weights))
    good = path.read_bytes()

    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptArtefact, match="cannot be read as a state dict: truncated or damaged") as info:
        load_model(weights)
    assert info.value.path == path and str(path) in str(info.value)

    torch.save([1, 2, 3], path)
    with pytest.raises(CorruptArtefact, match="holds a list, not a state dict"):
        load_model(weights)

    torch.save({"x": torch.nn.Linear(2, 2)}, path)  # a pickled module: weights_only refuses it
    with pytest.raises(CorruptArtefact, match="holds objects besides tensors"):
        load_model(weights)

    card = read_model_card(weights)  # the same network with one class more: another head
    space = make_space(card["space"])
    torch.save(space.build(space.from_string(card["arch"]), tuple(card["input_shape"]), 11).state_dict(), path)
    with pytest.raises(CorruptArtefact, match=r"does not fit the architecture in .*model.yaml: .* is \("):
        load_model(weights)

    state = torch.load(io.BytesIO(good), weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, path)
    with pytest.raises(CorruptArtefact, match="missing "):
        load_model(weights)

    path.unlink()
    with pytest.raises(ArtefactError, match="model.pt: file not found"):
        load_model(weights)


def test_a_missing_or_foreign_card_is_named(tmp_path):
    with pytest.raises(ArtefactError, match="model.yaml: file not found"):
        read_model_card(tmp_path)
    path = Path(layout.model_card(tmp_path))
    write_yaml(path, ["not", "a", "card"])
    with pytest.raises(CorruptArtefact, match="not a model card"):
        read_model_card(tmp_path)
    write_yaml(path, {"format": 1, "run": "demo"})
    with pytest.raises(CorruptArtefact, match="not a model card: it lacks arch"):
        read_model_card(tmp_path)
    path.write_text("format: [1\n")
    with pytest.raises(CorruptArtefact, match="not valid YAML"):
        read_model_card(tmp_path)
    _, space, arch, shape = build("nb201")
    card = card_for(space, arch, shape, {"exported_program": {"file": "model.pt2"}, "onnx": {"skipped": "x"}})
    write_model_card(tmp_path, {**card, "preprocess": {**card["preprocess"], "mean": [0.1, 0.2]}})
    with pytest.raises(CorruptArtefact, match="preprocess.mean must hold one number per channel"):
        read_model_card(tmp_path)
    write_model_card(tmp_path, {**card, "arch": "|bogus~0|"})
    with pytest.raises(CorruptArtefact, match="cannot rebuild the network"):
        load_model(tmp_path)
