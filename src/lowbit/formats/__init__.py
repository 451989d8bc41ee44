"""Number formats: one definition each, used by layers, kernels and save/load alike."""

from .error import sqnr

__all__ = ["sqnr"]
