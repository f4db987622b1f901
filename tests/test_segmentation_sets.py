"""The VOC, Cityscapes and ADE20K loaders on tiny copies of each set's real layout.

Each fixture writes a few 24x20 images (JPEG or PNG, as the set has them) and
their masks (VOC: palette PNGs with a 255 border; Cityscapes: 8-bit label-id
PNGs; ADE20K: 8-bit class PNGs) where the set's files lie, in blocks of one
label each, so that the remapped labels can be checked pixel by pixel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.tasks import TaskError, task_for
from nas.tasks.segmentation import IGNORE_INDEX, palette
from nas.tasks.segmentation_sets import (ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES, VOC_FOLDERS,
                                         VOC_TRAIN_IMAGES, VOC_YEARS)
from nas.tasks.vision import _default_val

WIDTH, HEIGHT = 24, 20
TRAIN, VAL = 5, 2
# Larger than both sides: the nearest-neighbour upscale keeps every source pixel.
SIZE = 32


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path)


def _labels(left: int, right: int, border: int | None = None) -> np.ndarray:
    """`left` in the left half, `right` in the right, `border` (if any) on the columns between."""
    mask = np.full((HEIGHT, WIDTH), left, dtype=np.uint8)
    mask[:, WIDTH // 2:] = right
    if border is not None:
        mask[:, WIDTH // 2 - 1: WIDTH // 2 + 1] = border
    return mask


def _mask(path: Path, labels: np.ndarray, colours: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels)
    if colours:  # a palette PNG, as VOC's: the indices are the classes
        image.putpalette(palette().tobytes())
    image.save(path)


def _nearest(labels: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """What the loader's mask should be: the labels resized as PIL does, then mapped."""
    resized = np.asarray(Image.fromarray(labels).resize((SIZE, SIZE), Image.NEAREST))
    return resized if lut is None else lut[resized]


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    folder = tmp_path / VOC_FOLDERS["2012"]
    ids = {"train": [f"2007_{i:06d}" for i in range(TRAIN)], "val": [f"2008_{i:06d}" for i in range(VAL)]}
    for split, names in ids.items():
        for i, name in enumerate(names):
            _photo(folder / "JPEGImages" / f"{name}.jpg", i)
            _mask(folder / "SegmentationClass" / f"{name}.png", _labels(0, 15, IGNORE_INDEX), colours=True)
        lists = folder / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True, exist_ok=True)
        (lists / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    return tmp_path


@pytest.fixture
def cityscapes(tmp_path: Path) -> Path:
    for split, cities, count in (("train", ("aachen", "bremen"), TRAIN), ("val", ("lindau",), VAL)):
        for i in range(count):
            city = cities[i % len(cities)]
            stem = f"{city}_{i:06d}_000019"
            _photo(tmp_path / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", i)
            # 26 (car) on the left, 0 (unlabelled) on the right, 1 (ego vehicle) between.
            _mask(tmp_path / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", _labels(26, 0, 1))
    return tmp_path


@pytest.fixture
def ade(tmp_path: Path) -> Path:
    folder = tmp_path / "ADEChallengeData2016"
    for split, prefix, count in (("training", "ADE_train", TRAIN), ("validation", "ADE_val", VAL)):
        for i in range(count):
            _photo(folder / "images" / split / f"{prefix}_{i:08d}.jpg", i)
            _mask(folder / "annotations" / split / f"{prefix}_{i:08d}.png", _labels(0, 5, 150))
    return tmp_path


CASES = {"voc_segmentation": "voc", "cityscapes": "cityscapes", "ade20k": "ade"}


@pytest.fixture(params=sorted(CASES))
def task_root(request) -> tuple[str, Path]:
    return request.param, request.getfixturevalue(CASES[request.param])


def test_voc_years_are_torchvisions_strings():
    assert VOC_YEARS == ("2007", "2008", "2009", "2010", "2011", "2012")
    assert set(VOC_FOLDERS) == set(VOC_TRAIN_IMAGES) == set(VOC_YEARS)
    assert VOC_FOLDERS["2011"] == Path("TrainVal", "VOCdevkit", "VOC2011")


def test_class_names_and_shapes():
    for name, classes in (("voc_segmentation", VOC_CLASSES), ("cityscapes", CITYSCAPES_CLASSES),
                          ("ade20k", ADE20K_CLASSES)):
        info = task_for({"name": name, "root": "/nowhere"}).describe()
        assert info.input_shape == (3, 128, 128) and info.num_classes == len(classes)
    assert (len(VOC_CLASSES), len(CITYSCAPES_CLASSES), len(ADE20K_CLASSES)) == (21, 19, 150)
    assert VOC_CLASSES[15] == "person" and CITYSCAPES_CLASSES[13] == "car" and ADE20K_CLASSES[4] == "tree"


def test_check_and_default_val_size_need_no_torch(task_root, monkeypatch):
    name, root = task_root
    for heavy in ("torch", "torchvision"):  # an import of them now fails
        monkeypatch.setitem(sys.modules, heavy, None)
    task = task_for({"name": name, "root": str(root)})
    task.check()
    assert task.default_val_size() == _default_val(TRAIN) == 1
    assert task.resolved()["val_size"] == 1


def test_splits_lengths_shapes_and_classes(task_root):
    name, root = task_root
    task = task_for({"name": name, "root": str(root), "image_size": SIZE})
    splits = task.splits(seed=3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (TRAIN - 1, 1, VAL)
    assert splits.info.input_shape == (3, SIZE, SIZE)
    assert splits.classes == {"voc_segmentation": VOC_CLASSES, "cityscapes": CITYSCAPES_CLASSES,
                              "ade20k": ADE20K_CLASSES}[name]
    assert splits.preprocess == {"pixels": 255, "resize": True, "mean": [0.485, 0.456, 0.406],
                                 "std": [0.229, 0.224, 0.225]}
    image, mask = splits.train[0]
    assert tuple(image.shape) == (3, SIZE, SIZE) and image.dtype.is_floating_point
    assert tuple(mask.shape) == (SIZE, SIZE) and str(mask.dtype) == "torch.int64"
    # The validation image is one of the training set's, the same for the same seed.
    assert set(splits.train.indices).isdisjoint(splits.val.indices)
    assert task.splits(seed=3).val.indices == splits.val.indices
    capped = task_for({"name": name, "root": str(root), "train_size": 2, "val_size": 2}).splits(seed=0)
    assert (len(capped.train), len(capped.val)) == (2, 2)


def test_voc_keeps_its_classes_and_the_255_border(voc):
    splits = task_for({"name": "voc_segmentation", "root": str(voc), "image_size": SIZE}).splits(seed=0)
    assert Image.open(next((voc / VOC_FOLDERS["2012"] / "SegmentationClass").iterdir())).mode == "P"
    for data in (splits.train, splits.test):
        mask = data[0][1].numpy()
        assert np.array_equal(mask, _nearest(_labels(0, 15, IGNORE_INDEX)))
        assert set(np.unique(mask)) == {0, 15, IGNORE_INDEX}


def test_cityscapes_label_ids_become_train_ids(cityscapes):
    splits = task_for({"name": "cityscapes", "root": str(cityscapes), "image_size": SIZE}).splits(seed=0)
    mask = splits.test[0][1].numpy()
    assert mask[0, 0] == 13 and mask[0, -1] == IGNORE_INDEX  # car 26 -> 13, unlabelled 0 -> 255
    assert set(np.unique(mask)) == {13, IGNORE_INDEX}  # ego vehicle 1 -> 255 too
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[26] = 13
    assert np.array_equal(mask, _nearest(_labels(26, 0, 1), lut))


def test_cityscapes_pairs_are_in_name_order(cityscapes):
    splits = task_for({"name": "cityscapes", "root": str(cityscapes)}).splits(seed=0)
    images = splits.train.dataset.images
    assert images == sorted(images) and len(images) == TRAIN
    assert all(Path(target).name == Path(image).name.replace("leftImg8bit", "gtFine_labelIds")
               for image, (target,) in zip(images, splits.train.dataset.targets))


def test_ade20k_other_is_ignored_and_classes_shift_down(ade):
    splits = task_for({"name": "ade20k", "root": str(ade), "image_size": SIZE}).splits(seed=0)
    mask = splits.train[0][1].numpy()
    assert mask[0, 0] == IGNORE_INDEX and mask[0, -1] == 4  # 0 -> 255, 5 -> 4
    assert set(np.unique(mask)) == {4, 149, IGNORE_INDEX}  # 150 -> 149
    # ADEChallengeData2016 itself as the root.
    inner = task_for({"name": "ade20k", "root": str(ade / "ADEChallengeData2016"), "image_size": SIZE})
    inner.check()
    assert np.array_equal(inner.splits(seed=0).train[0][1].numpy(), mask)


def test_a_missing_ade20k_annotation_is_named(ade):
    lost = ade / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000001.png"
    lost.unlink()
    with pytest.raises(TaskError, match="ADE_val_00000001.png not found; the annotation of .*ADE_val_00000001.jpg"):
        task_for({"name": "ade20k", "root": str(ade)}).splits(seed=0)


def test_a_missing_cityscapes_annotation_is_named(cityscapes):
    lost = next((cityscapes / "gtFine" / "val" / "lindau").iterdir())
    lost.unlink()
    with pytest.raises(TaskError, match=lost.name):
        task_for({"name": "cityscapes", "root": str(cityscapes)}).splits(seed=0)


def test_a_missing_root_is_named(tmp_path):
    missing = tmp_path / "nothing"
    for name in CASES:
        with pytest.raises(TaskError, match=f"{missing} not found"):
            task_for({"name": name, "root": str(missing)}).check()
        with pytest.raises(TaskError, match="needs task.root"):
            task_for({"name": name}).check()


@pytest.mark.parametrize("name, gone", [
    ("voc_segmentation", "VOCdevkit/VOC2012/SegmentationClass"),
    ("voc_segmentation", "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"),
    ("cityscapes", "gtFine/val"),
    ("ade20k", "ADEChallengeData2016/annotations/training"),
])
def test_a_missing_folder_is_named(name, gone, request):
    import shutil

    root = request.getfixturevalue(CASES[name])
    target = root / gone
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(TaskError, match=f"{target} not found; {name} needs") as caught:
        task_for({"name": name, "root": str(root)}).check()
    assert ("task.download: true" in str(caught.value)) == (name == "voc_segmentation")


def test_voc_year_picks_its_folder(voc):
    with pytest.raises(TaskError, match=str(voc / "TrainVal" / "VOCdevkit" / "VOC2011")):
        task_for({"name": "voc_segmentation", "root": str(voc), "year": "2011"}).check()
    with pytest.raises(TaskError, match="task.year must be one of"):
        task_for({"name": "voc_segmentation", "root": str(voc), "year": "2013"}).check()
    # A year written without quotes in YAML is an int: the same release.
    task_for({"name": "voc_segmentation", "root": str(voc), "year": 2012}).check()


def test_voc_download_skips_the_file_check_and_knows_its_size(tmp_path):
    task = task_for({"name": "voc_segmentation", "root": str(tmp_path), "download": True, "year": "2007"})
    task.check()
    assert task.default_val_size() == _default_val(VOC_TRAIN_IMAGES["2007"])


def test_sets_without_download_say_how_to_get_them(cityscapes, ade):
    with pytest.raises(TaskError, match="login at https://www.cityscapes-dataset.com"):
        task_for({"name": "cityscapes", "root": str(cityscapes), "download": True}).check()
    with pytest.raises(TaskError, match="ADEChallengeData2016.zip"):
        task_for({"name": "ade20k", "root": str(ade), "download": True}).check()
    task_for({"name": "cityscapes", "root": str(cityscapes), "download": False}).check()
    with pytest.raises(TaskError, match="takes no option 'year'"):
        task_for({"name": "cityscapes", "root": str(cityscapes), "year": "2012"}).check()
