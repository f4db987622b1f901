"""The final model as files: its weights, two exports, and a card that says what it is.

The final step (nas/final.py) trains the winning architecture and hands the
network to `export_model`, which writes, each atomically and in this order so
that a failed export never costs the one before it:

    model.pt     the state dict (torch.load(..., weights_only=True)); with
                 model.yaml it rebuilds the network (`load_model`)
    model.pt2    a torch.export ExportedProgram with a dynamic batch
                 dimension: PyTorch alone runs it, no snakenas needed
    model.onnx   the same graph for onnxruntime (torch.onnx.export(dynamo=True)),
                 checked against PyTorch on real validation images; skipped
                 when the run's `final.onnx` is false

`write_model_card` then writes model.yaml, the one file a reader (or
`python -m nas predict`) needs besides the weights. Its keys, filled by the
final step unless marked:

    format       1, the version of this layout
    run          the run's name
    arch         the architecture string of the space
    space        the run's space section: make_space(space) rebuilds the space
    task         the run's resolved task section
    input_shape  [channels, height, width] of one image
    classes      class name of each output index
    preprocess   {pixels, resize, mean, std}: an 8-bit image's values are divided
                 by `pixels` (to [0, 1]); resize true: the image is resized to
                 input_shape's height x width (bilinear) first, false: its size
                 must equal it; then each channel becomes (x - mean) / std.
                 input_shape[0] is the channels the image must have: 1, an 8-bit
                 grayscale image (PIL mode "L"); 3, an RGB image (mode "RGB")
    trained_on   "train+val" or "train"
    metrics      the final model's metrics ({test_acc: ..., ...})
    exports      what export_model returned: file, check and versions of each export
    files        (added here) state_dict, exported_program, onnx (when exported)
    load         (added here) the three lines that load the model: with snakenas,
                 with PyTorch only, with onnxruntime

This module imports no torch at its top: `predict` reads cards without it.
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from nas import layout
from nas.io import ArtefactError, CorruptArtefact, atomic_write_bytes, atomic_write_text, read_yaml
from nas.spaces import SpaceError, make_space
from nas.tasks import TaskError, TaskInfo, task_for

if TYPE_CHECKING:  # torch stays out of the import path of `predict`
    import torch

CARD_FORMAT = 1
# What the final step fills in; `files` and `load` are added by write_model_card.
CARD_KEYS = ("format", "run", "arch", "space", "task", "input_shape", "classes", "preprocess",
             "trained_on", "metrics", "exports")
PREPROCESS_KEYS = ("pixels", "resize", "mean", "std")
# The largest difference allowed between the logits of an export and of the
# network it came from, on the same images (float32 rounding is about 1e-7).
ONNX_TOLERANCE = 1e-4
ONNX_EXPORTER = "torch.onnx.export(dynamo=True)"
INPUT_NAME, OUTPUT_NAME = "image", "logits"
# How the exporter names an operation it has no ONNX function for.
_MISSING_OP = re.compile(r"No ONNX function found for <OpOverload\(op='([\w.]+)', overload='(\w+)'\)>")
_NODE_TARGET = re.compile(r"target=torch\.ops\.([\w.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ExportError(ValueError):
    """An export that cannot be done; the files written before it are kept."""


# -- exporting ------------------------------------------------------------------------


def export_model(model: "torch.nn.Module", example: "torch.Tensor", folder: str | Path, onnx: bool = True) -> dict:
    """Write model.pt, model.pt2 and (onnx) model.onnx of `model` into `folder`;
    return what the card records of the exports.

    `model` is put in eval mode on the CPU (in place). `example` is a batch of
    real validation inputs (N, C, H, W): it traces the graph (the batch size
    stays free) and checks each export's logits against the model's.
    """
    import torch

    model = model.cpu().eval()
    example = example.detach().cpu().float()
    if example.ndim < 1 or example.shape[0] == 0:
        raise ExportError(f"exporting to {folder} needs at least one validation image, "
                          f"got a batch of shape {tuple(example.shape)}")
    checked_on = f"{example.shape[0]} validation image{'s' if example.shape[0] > 1 else ''}"
    if example.shape[0] == 1:  # a batch of one would fix the batch dimension at 1
        example = torch.cat([example, example])
    with torch.no_grad():
        expected = model(example).numpy()

    _timed("model.pt", lambda: _save_state(model, folder))
    program = _timed("model.pt2", lambda: _save_program(model, example, expected, folder, checked_on))
    if not onnx:
        return {"exported_program": program, "onnx": {"skipped": "final.onnx is false"}}
    onnx_entry = _timed("model.onnx", lambda: _save_onnx(model, example, expected, folder, checked_on))
    return {"exported_program": program, "onnx": onnx_entry}


def _timed(name: str, work: Any) -> Any:
    """Run one export and log how long it took: one line per file in the step's log."""
    start = time.perf_counter()
    result = work()
    check = f", max abs diff {result['max_abs_diff']:.1e}" if isinstance(result, dict) else ""
    print(f"{name}: written in {time.perf_counter() - start:.1f} s{check}", file=sys.stderr, flush=True)
    return result


def _save_state(model: "torch.nn.Module", folder: str | Path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(layout.model_state(folder), buf.getvalue())


def _batch_dim() -> dict[int, Any]:
    import torch

    return {0: torch.export.Dim("batch", min=1)}


def _save_program(model: "torch.nn.Module", example: "torch.Tensor", expected: Any, folder: str | Path,
                  checked_on: str) -> dict:
    import torch

    path = layout.model_program(folder)
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=(_batch_dim(),))
    except Exception as e:
        raise ExportError(
            f"torch.export could not capture the network ({_summary(e)}): {path} and "
            f"{layout.model_onnx(folder)} were not written; {layout.model_state(folder)} was, "
            f"and nas.export.load_model loads it with {layout.model_card(folder)}"
        ) from e
    with torch.no_grad():
        diff = _max_diff(program.module()(example).numpy(), expected)
    if diff > ONNX_TOLERANCE:
        raise ExportError(f"{path} not written: its logits differ from the network's by up to {diff:.2e} "
                          f"(allowed {ONNX_TOLERANCE:g})")
    buf = io.BytesIO()
    torch.export.save(program, buf)
    atomic_write_bytes(path, buf.getvalue())
    return {"file": Path(path).name, "max_abs_diff": diff, "checked_on": checked_on}


def _save_onnx(model: "torch.nn.Module", example: "torch.Tensor", expected: Any, folder: str | Path,
               checked_on: str) -> dict:
    import onnx
    import onnxruntime
    import torch

    path = layout.model_onnx(folder)
    try:
        # verbose=False: no "[torch.onnx] ..." progress lines in the step's log.
        exported = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=(_batch_dim(),),
                                     input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False)
    except Exception as e:
        raise ExportError(_onnx_failure(e, folder)) from e
    with tempfile.TemporaryDirectory() as tmp:  # the exporter writes to a path; the folder gets it atomically
        exported.save(Path(tmp) / "model.onnx")
        data = (Path(tmp) / "model.onnx").read_bytes()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    diff = _max_diff(session.run(None, {INPUT_NAME: example.numpy()})[0], expected)
    if diff > ONNX_TOLERANCE:
        raise ExportError(
            f"{path} not written: onnxruntime's logits differ from PyTorch's by up to {diff:.2e} "
            f"(allowed {ONNX_TOLERANCE:g}); {layout.model_state(folder)} and {layout.model_program(folder)} "
            "were written; set `final.onnx: false` in the config to export without ONNX"
        )
    atomic_write_bytes(path, data)
    opset = next(o.version for o in onnx.load_model_from_string(data).opset_import if o.domain in ("", "ai.onnx"))
    return {"file": Path(path).name, "exporter": ONNX_EXPORTER, "opset": int(opset),
            "runtime": f"onnxruntime {onnxruntime.__version__}", "max_abs_diff": diff, "checked_on": checked_on}


def _max_diff(got: Any, expected: Any) -> float:
    """The largest difference of two arrays of logits, to 3 significant digits (for the card)."""
    diff = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - expected))) if expected.size else 0.0
    return float(f"{diff:.3g}")


def _onnx_failure(error: BaseException, folder: str | Path) -> str:
    """What went wrong in the ONNX exporter, the operation named where it says which."""
    import onnxscript
    import torch

    texts = [_ANSI.sub("", str(e)) for e in _chain(error)]
    missing = next((m for t in texts for m in _MISSING_OP.finditer(t)), None)
    node = next((m for t in texts for m in _NODE_TARGET.finditer(t)), None)
    if missing:
        op = missing[1] if missing[2] == "default" else f"{missing[1]}.{missing[2]}"
        what = f"the ONNX exporter has no conversion for the operation {op}"
    elif node:
        what = f"the ONNX exporter failed on the operation {node[1]} ({_summary(error)})"
    else:
        what = f"the ONNX exporter failed ({_summary(error)})"
    return (
        f"{layout.model_onnx(folder)} not written: {what} (torch {torch.__version__}, onnxscript "
        f"{onnxscript.__version__}). {layout.model_state(folder)} and {layout.model_program(folder)} were "
        "written and load without ONNX; set `final.onnx: false` in the config to export without ONNX, "
        "or use an architecture without that operation"
    )


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _summary(error: BaseException) -> str:
    """The innermost cause's first sentence: torch's own messages are pages long."""
    inner = _chain(error)[-1]
    lines = [line.strip() for line in _ANSI.sub("", str(inner)).splitlines() if line.strip()]
    if not lines:
        return type(inner).__name__
    sentence = lines[0].split(". ")[0].rstrip(".")
    return f"{type(inner).__name__}: {sentence if len(sentence) <= 200 else sentence[:200] + '...'}"


# -- the model card -----------------------------------------------------------------------


class _CardDumper(yaml.SafeDumper):
    """Safe YAML, with multi-line text (the load lines) as a literal block."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_CardDumper.add_representer(str, _text)


def write_model_card(folder: str | Path, card: dict) -> None:
    """Write model.yaml: `card` (CARD_KEYS) plus the files and the lines that load them."""
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise ExportError(f"model card for {folder} lacks {', '.join(missing)}")
    onnx = "file" in (card["exports"].get("onnx") or {})
    files = {"state_dict": Path(layout.model_state(folder)).name,
             "exported_program": Path(layout.model_program(folder)).name}
    if onnx:
        files["onnx"] = Path(layout.model_onnx(folder)).name
    out = {**card, "files": files, "load": load_text(folder, card["input_shape"], onnx)}
    text = yaml.dump(out, Dumper=_CardDumper, sort_keys=False, default_flow_style=None, width=100,
                     allow_unicode=True)
    atomic_write_text(layout.model_card(folder), text)


def load_text(folder: str | Path, input_shape: list[int], onnx: bool = True) -> str:
    """How to load the exported model, in three forms, with the folder's real path."""
    where = Path(folder).as_posix()
    shape = ", ".join(map(str, ["N", *input_shape]))
    lines = [
        f"# images: float32 ({shape}), preprocessed as `preprocess` says; logits: (N, classes)",
        "# with snakenas (from this repository):",
        "from nas.export import load_model",
        f'model = load_model("{where}")',
        "logits = model(images)",
        "# with PyTorch only:",
        "import torch",
        f'program = torch.export.load("{where}/{Path(layout.model_program(folder)).name}")',
        "logits = program.module()(images)",
    ]
    if onnx:
        lines += [
            "# with onnxruntime only (images: a numpy array):",
            "import onnxruntime",
            f'session = onnxruntime.InferenceSession("{where}/{Path(layout.model_onnx(folder)).name}", '
            'providers=["CPUExecutionProvider"])',
            f'logits = session.run(None, {{"{INPUT_NAME}": images}})[0]',
        ]
    return "\n".join(lines) + "\n"


def read_model_card(folder: str | Path) -> dict:
    """model.yaml, checked to be a card this version reads (CorruptArtefact names the file)."""
    path = Path(layout.model_card(folder))
    if not path.is_file():
        raise ArtefactError(f"{path}: file not found; a final model folder (results/RUN/final, "
                            "written by the final step) holds it")
    card = read_yaml(path)
    if not isinstance(card, dict):
        raise CorruptArtefact(path, f"not a model card (a {type(card).__name__}, not a mapping)")
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise CorruptArtefact(path, f"not a model card: it lacks {', '.join(missing)}")
    if card["format"] != CARD_FORMAT:
        raise CorruptArtefact(path, f"model card format {card['format']!r}; this snakenas reads format {CARD_FORMAT}")
    problem = _card_problem(card)
    if problem:
        raise CorruptArtefact(path, f"not a usable model card: {problem}")
    return card


def _card_problem(card: dict) -> str | None:
    shape, classes, pre = card["input_shape"], card["classes"], card["preprocess"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_positive_int(v) for v in shape)):
        return f"input_shape must be [channels, height, width], got {shape!r}"
    if not (isinstance(classes, list) and classes):
        return f"classes must be a list of names, got {classes!r}"
    if not isinstance(pre, dict) or any(k not in pre for k in PREPROCESS_KEYS):
        return f"preprocess must have {', '.join(PREPROCESS_KEYS)}, got {pre!r}"
    for key in ("mean", "std"):
        if not (isinstance(pre[key], list) and len(pre[key]) == shape[0] and all(_is_number(v) for v in pre[key])):
            return f"preprocess.{key} must hold one number per channel ({shape[0]}), got {pre[key]!r}"
    if not all(v > 0 for v in pre["std"]) or not (_is_number(pre["pixels"]) and pre["pixels"] > 0):
        return "preprocess.std and preprocess.pixels must be positive"
    if not isinstance(pre["resize"], bool):
        return f"preprocess.resize must be true or false, got {pre['resize']!r}"
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- loading --------------------------------------------------------------------------


def load_model(folder: str | Path) -> "torch.nn.Module":
    """The exported network, rebuilt from model.yaml and model.pt, in eval mode on the CPU."""
    import torch

    card = read_model_card(folder)
    card_path, path = layout.model_card(folder), Path(layout.model_state(folder))
    shape = tuple(card["input_shape"])
    try:
        space = make_space(card["space"])
        genome = space.from_string(card["arch"])
        model = task_for(card["task"]).model(space, genome, TaskInfo(str(card["task"].get("name")), shape,
                                                                      len(card["classes"])))
    except (SpaceError, TaskError, AttributeError, TypeError) as e:
        raise CorruptArtefact(card_path, f"cannot rebuild the network from it ({e})") from None
    if not path.is_file():
        raise ArtefactError(f"{path}: file not found (the weights beside {card_path})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, not a torch.save file at all, a pickle of objects, ...
        # weights_only loading refuses a file of arbitrary objects with an UnpicklingError.
        what = ("holds objects besides tensors, which weights_only loading refuses"
                if type(e).__name__ == "UnpicklingError" else "cannot be read as a state dict: truncated or damaged")
        raise CorruptArtefact(path, f"{what} ({_summary(e)})") from None
    problem = _state_problem(state, model.state_dict())
    if problem:
        raise CorruptArtefact(path, f"does not fit the architecture in {card_path}: {problem}")
    model.load_state_dict(state)
    return model.eval()


def _state_problem(state: Any, expected: dict[str, Any]) -> str | None:
    """What keeps `state` from loading into a network whose state dict is `expected`."""
    import torch

    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return f"it holds a {type(state).__name__}, not a state dict of tensors"
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} is {tuple(state[k].shape)}, the network's {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = ([f"missing {_few(missing)}"] if missing else []) + (
        [f"unexpected {_few(unexpected)}"] if unexpected else []) + shapes[:3]
    return "; ".join(problems) or None


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


__all__ = ["CARD_FORMAT", "CARD_KEYS", "ExportError", "ONNX_TOLERANCE", "export_model", "load_model",
           "load_text", "read_model_card", "write_model_card"]
