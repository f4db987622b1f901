"""The real semantic segmentation data sets: Pascal VOC, Cityscapes, ADE20K.

Each is read from task.root in its official on-disk layout:

  voc_segmentation   torchvision's VOCSegmentation (task.download: true fetches
                     the VOCtrainval tar of task.year):
                       root/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
                       root/VOCdevkit/VOC2012/SegmentationClass/<id>.png
                       root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
                     (VOC2007 ... VOC2012 by year; the 2011 tar nests it as
                     root/TrainVal/VOCdevkit/VOC2011). The masks are palette
                     PNGs whose indices are the classes: 0 background, 1..20 the
                     objects, 255 the object borders, which stay IGNORE_INDEX.
                     21 classes.
  cityscapes         torchvision's Cityscapes, fine annotations (the files need
                     a login at cityscapes-dataset.com: no download):
                       root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
                       root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
                     The 34 label ids (0..33) map to the benchmark's 19 train ids
                     (road 7 -> 0, ..., bicycle 33 -> 18); every other id
                     (unlabelled, ego vehicle, ..., the ids the benchmark does
                     not evaluate) is IGNORE_INDEX. 19 classes.
  ade20k             the MIT Scene Parsing benchmark (ADEChallengeData2016.zip;
                     root is the folder holding ADEChallengeData2016 or that
                     folder itself):
                       ADEChallengeData2016/images/{training,validation}/<name>.jpg
                       ADEChallengeData2016/annotations/{training,validation}/<name>.png
                     Annotation 0 ("other objects") is IGNORE_INDEX and class k
                     of 1..150 becomes k - 1. 150 classes.

The label mapping is a 256-entry table that PairTransform applies after the
nearest-neighbour resize of the mask. Splits: the test split is each set's
official val split (the test labels are not public); validation images are
held out of the official train split with the run seed (task.val_size, by
default a fifth of it, at most vision.DEFAULT_VAL_SIZE), the rest capped at
task.train_size. Images are resized to task.image_size squared and normalised
with the ImageNet mean and std.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import numpy as np

from nas.tasks.base import Splits, TaskError, TaskInfo, root_of
from nas.tasks.segmentation import IGNORE_INDEX, PairTransform, SegmentationTask
from nas.tasks.vision import _default_val, _opened, _with_validation

DEFAULT_IMAGE_SIZE = 128
# The statistics of ImageNet's training images, which the usual pretrained
# backbones and the published segmentation recipes normalise with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# -- Pascal VOC -------------------------------------------------------------------

# As torchvision takes them (strings: its check compares with str years).
VOC_YEARS = ("2007", "2008", "2009", "2010", "2011", "2012")
DEFAULT_VOC_YEAR = "2012"
# Where each release's tar puts its files under root (torchvision's folders).
VOC_FOLDERS = {year: Path("VOCdevkit", f"VOC{year}") for year in VOC_YEARS}
VOC_FOLDERS["2011"] = Path("TrainVal", "VOCdevkit", "VOC2011")
# Segmentation training images of each release (the development kits' counts),
# for the default val_size of a run that downloads the files only when it trains.
VOC_TRAIN_IMAGES = {"2007": 209, "2008": 511, "2009": 749, "2010": 964, "2011": 1112, "2012": 1464}
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")

# -- Cityscapes -------------------------------------------------------------------

# (label id, name) of the 19 evaluated classes, in train-id order.
CITYSCAPES_TRAIN_IDS = (
    (7, "road"), (8, "sidewalk"), (11, "building"), (12, "wall"), (13, "fence"), (17, "pole"),
    (19, "traffic light"), (20, "traffic sign"), (21, "vegetation"), (22, "terrain"), (23, "sky"),
    (24, "person"), (25, "rider"), (26, "car"), (27, "truck"), (28, "bus"), (31, "train"),
    (32, "motorcycle"), (33, "bicycle"),
)
CITYSCAPES_CLASSES = tuple(name for _, name in CITYSCAPES_TRAIN_IDS)

# -- ADE20K -----------------------------------------------------------------------

ADE_FOLDER = "ADEChallengeData2016"
ADE_SPLITS = {"train": "training", "test": "validation"}
# The first name of each class of the benchmark's objectInfo150 table, class 1 first.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)


def label_table(mapping: Iterable[tuple[int, int]]) -> np.ndarray:
    """A 256-entry table for PairTransform's `lut`: each (label, class) pair, every
    other 8-bit label IGNORE_INDEX."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label, cls in mapping:
        table[label] = cls
    return table


CITYSCAPES_LUT = label_table((label, train_id) for train_id, (label, _) in enumerate(CITYSCAPES_TRAIN_IDS))
ADE20K_LUT = label_table((k, k - 1) for k in range(1, len(ADE20K_CLASSES) + 1))


def first_missing(paths: Iterable[str | Path]) -> Path | None:
    """The first of `paths` that does not exist, None when all do."""
    return next((Path(p) for p in paths if not os.path.exists(p)), None)


def require(paths: Iterable[str | Path], what: str) -> None:
    """A TaskError naming the first of `paths` that is missing, and `what` should be there."""
    missing = first_missing(paths)
    if missing is not None:
        raise TaskError(f"task.root: {missing} not found; {what}")


class SegmentationSetTask(SegmentationTask):
    """What the three sets share: files under task.root checked without torch, the
    ImageNet normalisation, and the splits (validation out of the official train
    split, the official val split the test split).

    A set says where its files are (`expected`, `layout`), how many training
    images it has (`training_images`) and how it opens its two splits
    (`official`); `lut` maps its label ids to classes."""

    options = {**SegmentationTask.options, "root": None, "image_size": DEFAULT_IMAGE_SIZE}
    sizes = ("train_size", "val_size", "image_size")
    libraries = ("torchvision",)
    class_names: ClassVar[tuple[str, ...]] = ()
    lut: ClassVar[np.ndarray | None] = None
    # How to get the files of a set snakenas cannot download (the refusal of
    # task.download: true says so); empty for a set that it can.
    obtain: ClassVar[str] = ""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        # download is taken (false is a no-op) by the sets without one too, so that
        # `download: true` gets check()'s message on how to fetch them rather than
        # the config's "takes no option".
        return tuple(dict.fromkeys((*super().option_names(), "download")))

    def check(self) -> None:
        if self.cfg.get("download") and self.obtain:
            raise TaskError(f"task.download: {self.name} cannot be downloaded by snakenas; {self.obtain}")
        super().check()
        root = root_of(self.cfg)
        if self.downloads():
            return
        require(self.expected(root), f"{self.name} needs {self.layout()}{self.hint()}")

    def check_options(self) -> None:
        super().check_options()
        if not isinstance(self.cfg.get("download", False), bool):
            raise TaskError(f"task.download must be true or false, got {self.cfg['download']!r}")

    def downloads(self) -> bool:
        """Whether the files may be fetched when training starts (VOC with task.download)."""
        return False

    def hint(self) -> str:
        """What the missing-file message adds after the layout."""
        return ""

    def image_size(self) -> int:
        return int(self.cfg.get("image_size") or DEFAULT_IMAGE_SIZE)

    def describe(self) -> TaskInfo:
        size = self.image_size()
        return TaskInfo(self.name, (3, size, size), len(self.class_names))

    def default_val_size(self) -> int:
        return _default_val(self.training_images())

    # -- what each set says --------------------------------------------------------------

    def expected(self, root: Path) -> list[Path]:
        """The folders and files that must be there, in the order to name the first missing."""
        raise NotImplementedError

    def layout(self) -> str:
        """What should be under task.root, for the messages."""
        raise NotImplementedError

    def training_images(self) -> int:
        """Images of the official train split, counted without torch."""
        raise NotImplementedError

    def official(self, transform: PairTransform) -> tuple[Any, Any]:
        """The official (train, val) data sets of (image, mask) pairs through `transform`."""
        raise NotImplementedError

    # -- training time -----------------------------------------------------------------

    def splits(self, seed: int) -> Splits:
        self.check()
        info = self.describe()
        transform = PairTransform(info.input_shape[1], IMAGENET_MEAN, IMAGENET_STD, self.lut)
        train, test = _opened(self.cfg, lambda: self.official(transform))
        for split, data in (("train", train), ("val", test)):
            if not len(data):
                raise TaskError(f"task.root: {root_of(self.cfg)} holds no images of the {split} split; "
                                f"{self.name} needs {self.layout()}")
        preprocess = {"pixels": 255, "resize": True, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
        splits = _with_validation(self.cfg, info, seed, train, test, preprocess)
        # torchvision's segmentation sets carry no (or other) class lists: the set's own names.
        return dataclasses.replace(splits, classes=self.class_names)


class VOCSegmentationTask(SegmentationSetTask):
    """Pascal VOC segmentation (task.year, 2012 by default): 21 classes."""

    options = {**SegmentationSetTask.options, "download": False, "year": DEFAULT_VOC_YEAR}
    class_names = VOC_CLASSES

    def check_options(self) -> None:
        super().check_options()
        if str(self.cfg.get("year") or DEFAULT_VOC_YEAR) not in VOC_YEARS:
            raise TaskError(f"task.year must be one of {', '.join(VOC_YEARS)}, got {self.cfg['year']!r}")

    def year(self) -> str:
        # str: a YAML year written without quotes is an int; torchvision wants the string.
        return str(self.cfg.get("year") or DEFAULT_VOC_YEAR)

    def folder(self) -> Path:
        return root_of(self.cfg) / VOC_FOLDERS[self.year()]

    def downloads(self) -> bool:
        return bool(self.cfg.get("download", False))

    def hint(self) -> str:
        return " or set task.download: true (needs internet)"

    def expected(self, root: Path) -> list[Path]:
        folder = root / VOC_FOLDERS[self.year()]
        lists = folder / "ImageSets" / "Segmentation"
        return [root, folder, lists / "train.txt", lists / "val.txt", folder / "JPEGImages",
                folder / "SegmentationClass"]

    def layout(self) -> str:
        folder = Path("root", VOC_FOLDERS[self.year()])
        return (f"{folder}/JPEGImages/<id>.jpg, {folder}/SegmentationClass/<id>.png and "
                f"{folder}/ImageSets/Segmentation/train.txt, val.txt (the VOCtrainval tar of {self.year()} "
                "extracted into task.root)")

    def training_images(self) -> int:
        listing = self.folder() / "ImageSets" / "Segmentation" / "train.txt"
        if not listing.is_file() and self.downloads():
            return VOC_TRAIN_IMAGES[self.year()]
        self.check()
        with open(listing, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())

    def official(self, transform: PairTransform) -> tuple[Any, Any]:
        from torchvision.datasets import VOCSegmentation

        root, year = str(root_of(self.cfg)), self.year()
        # Fetched once: with download=True torchvision checks the tar's checksum and
        # extracts it again on every opening of a split.
        download = self.downloads() and not self.folder().is_dir()
        sets = []
        for image_set in ("train", "val"):
            data = VOCSegmentation(root, year=year, image_set=image_set, download=download, transforms=transform)
            download = False
            # A listed image without its files fails here, not in a training worker.
            require([*data.images, *data.masks], f"a file of an image that ImageSets/Segmentation/{image_set}.txt lists")
            sets.append(data)
        return sets[0], sets[1]


class CityscapesTask(SegmentationSetTask):
    """Cityscapes, fine annotations, the 19 evaluated classes."""

    class_names = CITYSCAPES_CLASSES
    lut = CITYSCAPES_LUT
    obtain = ("the files need a login at https://www.cityscapes-dataset.com: download "
              "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip there and extract them into task.root")

    def expected(self, root: Path) -> list[Path]:
        return [root, *(root / kind / split for kind in ("leftImg8bit", "gtFine") for split in ("train", "val"))]

    def layout(self) -> str:
        return ("root/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and "
                "root/gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png (leftImg8bit_trainvaltest.zip and "
                "gtFine_trainvaltest.zip extracted into task.root)")

    def training_images(self) -> int:
        self.check()
        images = root_of(self.cfg) / "leftImg8bit" / "train"
        return sum(name.endswith("_leftImg8bit.png") for city in os.scandir(images) if city.is_dir()
                   for name in os.listdir(city.path))

    def official(self, transform: PairTransform) -> tuple[Any, Any]:
        from torchvision.datasets import Cityscapes

        sets = []
        for split in ("train", "val"):
            data = Cityscapes(str(root_of(self.cfg)), split=split, mode="fine", target_type="semantic",
                              transforms=transform)
            # torchvision lists the folders in the file system's order, which differs
            # between machines: sorted, a seed holds out the same images everywhere.
            pairs = sorted(zip(data.images, data.targets))
            data.images, data.targets = [image for image, _ in pairs], [target for _, target in pairs]
            require((target for targets in data.targets for target in targets),
                    "the gtFine labelIds annotation of a leftImg8bit image")
            sets.append(data)
        return sets[0], sets[1]


def ade_folder(root: Path) -> Path:
    """ADEChallengeData2016 under root, or root itself when it is that folder."""
    if not (root / ADE_FOLDER).is_dir() and (root / "images").is_dir():
        return root
    return root / ADE_FOLDER


class SceneParsingPairs:
    """(image, annotation) pairs of one split of ADEChallengeData2016 (a map-style
    data set: torch's DataLoader and Subset need only len and indexing): the .jpg
    images sorted by name, each with the .png annotation of its stem."""

    def __init__(self, folder: Path, split: str, transforms: Callable[[Any, Any], Any] | None = None) -> None:
        self.images = sorted((folder / "images" / split).glob("*.jpg"))
        self.masks = [folder / "annotations" / split / f"{image.stem}.png" for image in self.images]
        missing = first_missing(self.masks)
        if missing is not None:
            raise TaskError(f"task.root: {missing} not found; the annotation of {self.images[self.masks.index(missing)]}")
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        from PIL import Image

        # Closed after the transform: a long training run opens every file many times.
        with Image.open(self.images[i]) as image, Image.open(self.masks[i]) as mask:
            if self.transforms is None:
                return image.convert("RGB"), mask.copy()
            return self.transforms(image, mask)


class ADE20KTask(SegmentationSetTask):
    """ADE20K as the MIT Scene Parsing benchmark: 150 classes."""

    class_names = ADE20K_CLASSES
    lut = ADE20K_LUT
    obtain = ("download ADEChallengeData2016.zip from the MIT Scene Parsing benchmark "
              "(http://sceneparsing.csail.mit.edu) and extract it into task.root")

    def expected(self, root: Path) -> list[Path]:
        folder = ade_folder(root)
        return [root, folder, *(folder / kind / split for kind in ("images", "annotations")
                                for split in ADE_SPLITS.values())]

    def layout(self) -> str:
        return (f"root/{ADE_FOLDER}/images/{{training,validation}}/<name>.jpg and "
                f"root/{ADE_FOLDER}/annotations/{{training,validation}}/<name>.png "
                f"(ADEChallengeData2016.zip extracted into task.root)")

    def training_images(self) -> int:
        self.check()
        return sum(1 for _ in (ade_folder(root_of(self.cfg)) / "images" / ADE_SPLITS["train"]).glob("*.jpg"))

    def official(self, transform: PairTransform) -> tuple[Any, Any]:
        folder = ade_folder(root_of(self.cfg))
        return (SceneParsingPairs(folder, ADE_SPLITS["train"], transform),
                SceneParsingPairs(folder, ADE_SPLITS["test"], transform))
