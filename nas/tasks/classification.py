"""Image classification: cross-entropy training, accuracy and loss as metrics.

The head is the space's own classifier (`SearchSpace.build`: global average
pooling and a linear layer on the backbone's last feature map). The
arithmetic is the training loop's of the first versions, operation for
operation, so losses and accuracies are bit-identical to theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nas.objectives import register
from nas.tasks.augment import AUGMENTS, CropFlip, black
from nas.tasks.base import Splits, Task, TaskInfo

if TYPE_CHECKING:
    import torch

    from nas.spaces.base import Genome, SearchSpace

VAL_ACC = register("val_acc", "max", "%", "top-1 accuracy on the validation split")
# Selecting on the test split would leak it into the search: reported only.
TEST_ACC = register("test_acc", "max", "%", "top-1 accuracy on the test split", selectable=False)
VAL_LOSS = register("val_loss", "min", "", "mean cross-entropy on the validation split")
TRAIN_LOSS = register("train_loss", "min", "", "mean training loss of the last epoch")


class ClassificationTask(Task):
    metrics = (VAL_ACC, TEST_ACC, VAL_LOSS, TRAIN_LOSS)
    primary = "val_acc"
    epoch_columns = ("train_loss", "train_acc", "val_loss", "val_acc")
    augments = AUGMENTS
    in_memory_sets = True

    def augmenter(self, splits: Splits) -> CropFlip | None:
        if self.option("augment") != "crop_flip":
            return None
        return CropFlip(splits.info.input_shape[1], black(splits.preprocess))

    def model(self, space: "SearchSpace", genome: "Genome", info: TaskInfo) -> "torch.nn.Module":
        return space.build(genome, info.input_shape, info.num_classes)

    def step(self, model: "torch.nn.Module", batch: Any, recipe: dict[str, Any]) -> tuple["torch.Tensor", dict[str, int]]:
        from torch import nn

        x, y = batch
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y, label_smoothing=recipe["label_smoothing"])
        return loss, {"count": len(y), "correct": (logits.argmax(1) == y).sum().item()}

    def train_summary(self, loss_sum: float, sums: dict[str, int]) -> dict[str, float]:
        return {"train_loss": loss_sum / sums["count"], "train_acc": 100.0 * sums["correct"] / sums["count"]}

    def evaluate(self, model: "torch.nn.Module", loader: Any, device: "torch.device") -> dict[str, float]:
        import torch
        from torch import nn

        model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for batch in loader:
                x, y = self.to_device(batch, device)
                logits = model(x)
                loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                count += len(y)
        return {"loss": loss_sum / max(count, 1), "acc": 100.0 * correct / max(count, 1)}
