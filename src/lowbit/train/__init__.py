"""Training in low precision: linears whose matmuls run in INT8/FP8, and `convert` to apply them."""

from .convert import PRECISION_NAMES, convert
from .int8_weight import Int8WeightAdamW, Int8WeightLinear
from .linear import PRECISIONS, QuantTrainLinear, Recipe, recipe_for
from .loop import TrainConfig, lr_at, train

__all__ = ["convert", "PRECISION_NAMES", "PRECISIONS", "QuantTrainLinear", "Recipe", "recipe_for", "Int8WeightLinear", "Int8WeightAdamW", "TrainConfig", "train", "lr_at"]
