"""Quantization methods: configs that choose quantized weights and build the layers."""

import dataclasses

from .awq import AWQ
from .gptq import GPTQ
from .llm_int8 import LLMInt8
from .rtn import FP8, NF4, RTN, W8A8, KMeans
from .smoothquant import SmoothQuant

# Names the CLI and `lowbit.quantize(model, "name")` accept, with their default configs.
METHODS = {
    "rtn": RTN,
    "int8": lambda: RTN(bits=8),
    "int4": lambda: RTN(bits=4, granularity="group", group_size=128, symmetric=False),
    "nf4": NF4,
    "fp8": FP8,
    "w8a8": W8A8,
    "llm_int8": LLMInt8,
    "kmeans": KMeans,
    "gptq": GPTQ,
    "awq": AWQ,
    "smoothquant": SmoothQuant,
}


def resolve(method) -> object:
    """A method config from an instance or a name; a clear error for anything else."""
    if isinstance(method, str):
        if method.lower() not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)} or a config such as lowbit.RTN(bits=8)")
        return METHODS[method.lower()]()
    if isinstance(method, type):
        raise ValueError(f"method must be a config instance such as {method.__name__}(), not the class {method.__name__}")
    if not (callable(getattr(method, "layer", None)) or callable(getattr(method, "layer_from_observer", None))):
        raise ValueError(f"method must be a lowbit method config (RTN, NF4, FP8, W8A8, LLMInt8, KMeans, GPTQ) or one of {sorted(METHODS)}, got {method!r}")
    return method


def build(name: str, **options) -> object:
    """A method config from its name and options (the CLI's flags); an option the method does
    not take is an error, not silently dropped."""
    key = name.lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    factory = METHODS[key]
    base = factory()
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"method {name!r} takes no option {', '.join(unknown)}; its options are {sorted(fields)}")
    return dataclasses.replace(base, **options)


__all__ = ["build", "AWQ", "GPTQ", "SmoothQuant", "RTN", "NF4", "FP8", "W8A8", "LLMInt8", "KMeans", "METHODS", "resolve"]
