"""Training in low precision: linears whose matmuls run in INT8/FP8, and `convert` to apply them."""

from .convert import convert
from .linear import PRECISIONS, QuantTrainLinear, Recipe, recipe_for

__all__ = ["convert", "PRECISIONS", "QuantTrainLinear", "Recipe", "recipe_for"]
