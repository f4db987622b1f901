"""Semantic segmentation (nas/tasks/segmentation.py, nas/tasks/canvas.py): the
metrics against hand computations, masks that move with their images, every
space's backbones in both decoders, the embedded canvases, one training, and
a real snakemake search with a second objective."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nas import layout
from nas.config import resolve_runs
from nas.evaluators import evaluator_for
from nas.evaluators.flops import count_flops, count_params
from nas.io import read_tsv
from nas.meta.features import FEATURES, computed
from nas.spaces import make_space
from nas.tasks import TaskError, task_for
from nas.tasks.canvas import INK
from nas.tasks.segmentation import (IGNORE_INDEX, Flipped, PairTransform, collate_pairs, confusion, flip_pair, miou,
                                    pixel_accuracy)
from tests.helpers import snakemake, train, write_config

# -- mIoU and pixel accuracy against hand computations -----------------------------


def scores(target, predicted, classes: int = 3) -> tuple[float, float]:
    matrix = confusion(np.array(target), np.array(predicted), classes)
    return miou(matrix), pixel_accuracy(matrix)


def test_a_perfect_prediction_scores_100():
    target = [[0, 0, 1], [2, 2, 1]]
    assert scores(target, target) == (100.0, 100.0)


def test_all_background_scores_the_background_share_over_the_classes_present():
    # 6 pixels: 3 background, 2 of class 1, 1 of class 2; everything predicted background.
    target = [[0, 0, 0], [1, 1, 2]]
    m, acc = scores(target, np.zeros((2, 3), dtype=int))
    # background IoU 3 / 6; classes 1 and 2 IoU 0 (in the labels, never predicted).
    assert m == pytest.approx(100 * (3 / 6 + 0 + 0) / 3)
    assert acc == pytest.approx(100 * 3 / 6)


def test_a_shifted_object_by_hand():
    # A 1x2 object of class 1 in a 1x4 row, predicted one pixel to the right.
    target, predicted = [[0, 1, 1, 0]], [[0, 0, 1, 1]]
    # class 1: TP 1, FP 1, FN 1 -> 1/3; background: TP 1, FP 1, FN 1 -> 1/3; class 2 absent: left out.
    m, acc = scores(target, predicted)
    assert m == pytest.approx(100 / 3)
    assert acc == pytest.approx(50.0)


def test_ignored_pixels_count_for_nothing():
    target = [[0, IGNORE_INDEX, 1, IGNORE_INDEX]]
    predicted = [[0, 1, 1, 2]]  # wrong only where the label is ignored
    assert scores(target, predicted) == (100.0, 100.0)
    assert confusion(np.array(target), np.array(predicted), 3).sum() == 2


def test_the_metric_is_over_the_whole_split_not_a_mean_over_images():
    # Image A: a perfect class-1 prediction on 1 pixel; image B: 3 pixels of class 1 predicted 0.
    a_t, a_p = np.array([1, 0, 0, 0]), np.array([1, 0, 0, 0])
    b_t, b_p = np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0])
    whole = confusion(np.concatenate([a_t, b_t]), np.concatenate([a_p, b_p]), 2)
    # class 1: TP 1, FN 3 -> 1/4; background: TP 4, FP 3 -> 4/7.
    assert miou(whole) == pytest.approx(100 * (1 / 4 + 4 / 7) / 2)
    per_image = np.mean([miou(confusion(a_t, a_p, 2)), miou(confusion(b_t, b_p, 2))])
    assert miou(whole) != pytest.approx(per_image)


def test_task_evaluate_agrees_with_the_numpy_metric():
    task = task_for({"name": "digits_canvas", "image_size": 16, "digit_size": [8, 8]})
    target = torch.randint(0, 11, (3, 16, 16))
    target[0, :2] = IGNORE_INDEX
    logits = torch.randn(3, 11, 16, 16)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits[: len(x)]

    loader = [(torch.zeros(3, 1, 16, 16), target)]
    out = task.evaluate(Fixed(), loader, torch.device("cpu"))
    matrix = confusion(target.numpy(), logits.argmax(1).numpy(), 11)
    assert out["miou"] == pytest.approx(miou(matrix)) and out["pixel_acc"] == pytest.approx(pixel_accuracy(matrix))


# -- masks move with their images ---------------------------------------------------


def test_a_flipped_pair_is_the_flipped_image_and_the_flipped_mask():
    image = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, IGNORE_INDEX]])
    flipped_image, flipped_mask = flip_pair(image, mask)
    assert torch.equal(flipped_mask, torch.tensor([[3, 2, 1, 0], [7, 6, 5, 4], [IGNORE_INDEX, 10, 9, 8]]))
    assert torch.equal(flipped_image[:, :, 0], image[:, :, -1])


def test_random_flips_move_image_and_mask_together():
    # The mask is the image's own pixels: a pair stays consistent only if both flip.
    image = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    data = Flipped([(image, image[0].long())] * 32)
    torch.manual_seed(0)
    pairs = [data[i] for i in range(len(data))]
    assert all(torch.equal(x[0].long(), y) for x, y in pairs)
    flips = sum(not torch.equal(x, image) for x, _ in pairs)
    assert 0 < flips < 32


def test_resizing_takes_the_nearest_label_never_a_mix():
    mask = Image.fromarray(np.array([[0, 0, 15, 15], [0, 0, 15, 15], [IGNORE_INDEX] * 4, [7] * 4], dtype=np.uint8))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (4, 4, 3), dtype=np.uint8))
    x, y = PairTransform(9, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(image, mask)
    assert x.shape == (3, 9, 9) and x.dtype == torch.float32 and y.shape == (9, 9) and y.dtype == torch.long
    assert set(y.unique().tolist()) <= {0, 15, 7, IGNORE_INDEX}
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[15] = 1
    _, mapped = PairTransform(None, (0.5,) * 3, (0.5,) * 3, lut)(image, mask)
    assert mapped.tolist()[0] == [IGNORE_INDEX, IGNORE_INDEX, 1, 1]


def test_pairs_of_different_sizes_are_padded_with_the_ignore_label():
    a = (torch.ones(1, 2, 3), torch.zeros(2, 3, dtype=torch.long))
    b = (torch.ones(1, 4, 2), torch.ones(4, 2, dtype=torch.long))
    images, masks = collate_pairs([a, b])
    assert images.shape == (2, 1, 4, 3) and masks.shape == (2, 4, 3)
    assert (masks[0, 2:] == IGNORE_INDEX).all() and (masks[1, :, 2] == IGNORE_INDEX).all()
    assert images[0, 0, 2:].sum() == 0 and masks[1, :, :2].eq(1).all()


# -- backbones of both spaces in both decoders -------------------------------------

SPACES = {
    "nb201": {"name": "nb201", "channels": 4, "cells_per_stage": 1, "stem_stride": 2},
    "chain": {"name": "chain", "filters": [4, 8], "max_layers": 4, "stem_stride": 2},
}


@pytest.mark.parametrize("decoder", ["lraspp", "fcn"])
@pytest.mark.parametrize("space_name", list(SPACES))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31))
def test_every_backbone_segments_in_both_decoders(space_name, decoder, seed):
    space = make_space(SPACES[space_name])
    task = task_for({"name": "digits_canvas", "image_size": 32, "decoder": decoder, "decoder_channels": 8})
    info = task.describe()
    genome = space.sample(np.random.default_rng(seed))
    torch.manual_seed(0)
    model = task.model(space, genome, info)
    # The torch-free cost (the cheap metrics a constraint is checked on) is the built network's.
    assert task.cost(space, genome, info) == {"params": count_params(model), "flops": count_flops(model, info.input_shape)}
    x, y = torch.randn(2, 1, 32, 32), torch.randint(0, 11, (2, 32, 32))
    y[0, 0] = IGNORE_INDEX
    model.train()
    loss, stats = task.step(model, (x, y), {"label_smoothing": 0.0})
    loss.backward()
    assert model(x).shape == (2, 11, 32, 32) and torch.isfinite(loss) and stats["count"] == 2 * 32 * 32 - 32
    assert all(p.grad is not None for p in model.decoder.parameters())


# -- the embedded canvases ----------------------------------------------------------


def test_canvases_are_deterministic_and_their_masks_and_boxes_agree():
    task = task_for({"name": "digits_canvas", "images": 40, "test_images": 10, "image_size": 40})
    a, b = task.canvases("train"), task.canvases("train")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.images.shape == (40, 40, 40) and a.masks.max() <= 10
    other = task_for({"name": "digits_canvas", "images": 40, "image_size": 40, "data_seed": 1}).canvases("train")
    assert not np.array_equal(a.masks, other.masks)
    for image, mask, boxes in zip(a.images, a.masks, a.boxes):
        assert 1 <= len(boxes) <= 4
        assert np.array_equal(mask > 0, image >= INK)  # digits never overlap: ink is labelled
        for x0, y0, x1, y1, label in boxes:
            inside = mask[y0:y1 + 1, x0:x1 + 1]
            assert 1 <= label <= 10 and (inside == label).any()
            side = max(x1 - x0, y1 - y0) + 1
            assert side <= 32


def test_canvas_splits_hold_out_validation_with_the_run_seed():
    task = task_for({"name": "digits_canvas", "images": 30, "test_images": 8, "val_size": 10, "image_size": 32})
    s0, s1 = task.splits(0), task.splits(1)
    assert (len(s0.train), len(s0.val), len(s0.test)) == (20, 10, 8)
    x, y = s0.train[0]
    assert x.shape == (1, 32, 32) and y.shape == (32, 32) and y.dtype == torch.long
    assert torch.equal(s0.test.tensors[1], s1.test.tensors[1])  # the test split is the data's, not the seed's
    assert not torch.equal(s0.val.tensors[1], s1.val.tensors[1])
    assert s0.classes[0] == "background" and len(s0.classes) == s0.info.num_classes == 11


@pytest.mark.parametrize("options, problem", [
    ({"digit_size": [40, 48], "image_size": 32}, "does not fit a canvas of 32 px"),
    ({"digits": [3, 1]}, "task.digits must be"),
    ({"decoder": "unet"}, "task.decoder must be one of lraspp, fcn"),
    ({"decoder_channels": 0}, "decoder_channels"),
    ({"images": 0}, "task.images"),
])
def test_bad_canvas_options_are_refused_by_name(options, problem):
    with pytest.raises(TaskError, match=problem):
        task_for({"name": "digits_canvas", **options}).check()


def test_task_features_of_a_segmentation_task_count_pixel_labels():
    run = resolve_runs({"runs": {"r": {"task": {"name": "digits_canvas", "images": 40, "test_images": 4,
                                                "val_size": 10, "image_size": 32}}}})["r"]
    features = computed(run)
    assert set(features) == set(FEATURES)
    assert features["log_classes"] == pytest.approx(np.log(11)) and 0 < features["label_entropy"] < 1


# -- one training, and a real search -------------------------------------------------

TINY_TASK = {"name": "digits_canvas", "images": 48, "test_images": 8, "val_size": 16, "image_size": 32,
             "digit_size": [8, 16]}


def test_a_segmentation_training_writes_its_metrics_and_predictions(tmp_path):
    spec = {"candidate": "c00", "arch": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
            "space": SPACES["nb201"], "task": {**TINY_TASK, "flip": True}, "evaluator": {"name": "train"},
            "training": {"epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.01}, "seed": 3, "run_seed": 0}
    evaluator = evaluator_for(spec)
    result = evaluator.evaluate(spec, tmp_path)
    m = result.metrics
    assert list(m)[:7] == ["status", "val_miou", "test_miou", "val_pixel_acc", "test_pixel_acc", "val_loss", "train_loss"]
    assert m["status"] == "ok" and 0 <= m["val_miou"] <= 100 and 0 <= m["test_pixel_acc"] <= 100
    assert list(result.epochs[0]) == ["epoch", "train_loss", "train_pixel_acc", "val_loss", "val_miou", "val_pixel_acc",
                                      "seconds"]
    assert m["params"] == evaluator.cheap_values(make_space(spec["space"]), make_space(spec["space"]).from_string(spec["arch"]))["params"]
    picture = Image.open(layout.predictions_in(tmp_path))
    assert picture.format == "PNG" and picture.size[1] > 4 * 96
    again = train(spec)
    assert {k: v for k, v in again.metrics.items() if k != "train_seconds"} == \
        {k: v for k, v in m.items() if k != "train_seconds"}


def test_a_real_search_finds_segmenters_under_two_objectives(tmp_path):
    defaults = {"generations": 2, "population": 2, "candidates": 2, "space": SPACES["nb201"], "task": TINY_TASK,
                "training": {"epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": 0.01}}
    # nsga2 on val_miou against flops: a second objective works as for classification.
    runs = {"pareto": {"strategy": {"name": "nsga2"},
                       "objectives": [{"metric": "val_miou", "direction": "max"}, {"metric": "flops", "direction": "min"}],
                       "constraints": {"params": {"max": 100_000}}}}
    config = write_config(tmp_path / "config.yaml", runs, defaults)
    snakemake(tmp_path, "--configfile", str(config))
    for name in runs:
        rdir = tmp_path / layout.run_dir(name)
        rows = read_tsv(rdir / "history.tsv")
        assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
        assert {"val_miou", "test_miou", "val_pixel_acc", "flops"} <= set(rows[0])
        best = yaml.safe_load((rdir / "best.yaml").read_text())
        assert best["predictions"].endswith("predictions.png") and (tmp_path / best["predictions"]).is_file()
        assert "predictions of the best candidate" in (rdir / "overview.html").read_text()
        metrics = json.loads((rdir / "gen_000" / "evals" / "c00" / "metrics.json").read_text())
        assert metrics["status"] == "ok"
    assert (tmp_path / layout.run_dir("pareto") / "pareto.tsv").is_file()


def test_an_exported_segmenter_predicts_masks_with_onnx_and_torch(tmp_path):
    import contextlib
    import io

    from nas.export import export_model, write_model_card
    from nas.predict import predict, write_mask

    task_cfg = {"name": "digits_canvas", "image_size": 16, "digit_size": [8, 8]}
    task, space = task_for(task_cfg), make_space(SPACES["nb201"])
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    torch.manual_seed(0)
    model = task.model(space, space.from_string(arch), task.describe())
    with torch.no_grad():
        model.train()(torch.randn(16, 1, 16, 16))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exports = export_model(model.eval(), torch.randn(4, 1, 16, 16), tmp_path)
    classes = ["background", *map(str, range(10))]
    write_model_card(tmp_path, {
        "format": 1, "run": "seg", "arch": arch, "space": {"name": "nb201", **space.options()}, "task": task_cfg,
        "input_shape": [1, 16, 16], "classes": classes, "trained_on": "train", "metrics": {"test_miou": 1.0},
        "preprocess": {"pixels": 255, "resize": False, "mean": [0.1], "std": [0.3]}, "exports": exports})
    files = []
    for i in range(2):
        files.append(tmp_path / f"canvas{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16), dtype=np.uint8), mode="L").save(files[-1])
    with_onnx, with_torch = predict(tmp_path, files, top=3), predict(tmp_path, files, use_torch=True, top=3)
    for a, b in zip(with_onnx, with_torch):
        assert a["mask"].shape == (16, 16) and a["mask"].dtype == np.uint8 and a["mask"].max() <= 10
        assert (a["mask"] == b["mask"]).mean() > 0.99
        shares = [share for _, share in a["classes"]]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
    written = write_mask(with_onnx[0]["mask"], tmp_path / "masks", files[0])
    assert np.array_equal(np.asarray(Image.open(written)), with_onnx[0]["mask"])
