"""Tasks by name (see nas/tasks/base.py for what a task offers).

Importing this stays torch-free, and so do the task classes: torch comes in
only with a task's training-time methods.
"""

from __future__ import annotations

from typing import Any

from nas.registry import lookup
from nas.tasks.base import Splits, Task, TaskError, TaskInfo

TASKS: dict[str, str] = {
    "digits": "nas.tasks.digits:DigitsTask",
    "mnist": "nas.tasks.vision:TorchvisionTask",
    "fashion_mnist": "nas.tasks.vision:TorchvisionTask",
    "cifar10": "nas.tasks.vision:TorchvisionTask",
    "cifar100": "nas.tasks.vision:TorchvisionTask",
    "svhn": "nas.tasks.vision:TorchvisionTask",
    "image_folder": "nas.tasks.vision:ImageFolderTask",
    "digits_canvas": "nas.tasks.canvas:DigitsCanvasTask",
    "voc_segmentation": "nas.tasks.segmentation_sets:VOCSegmentationTask",
    "cityscapes": "nas.tasks.segmentation_sets:CityscapesTask",
    "ade20k": "nas.tasks.segmentation_sets:ADE20KTask",
}


def task_class(name: Any) -> type[Task]:
    return lookup(TASKS, "task", name, TaskError)


def task_for(cfg: dict[str, Any]) -> Task:
    """The task of a config section {'name': ..., **options}."""
    return task_class(cfg.get("name"))(cfg)


__all__ = ["TASKS", "Splits", "Task", "TaskError", "TaskInfo", "task_class", "task_for"]
