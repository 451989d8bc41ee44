"""How the benches time a GPU function: replayed as a CUDA graph where it can be captured, so that the host's cost
of a launch does not count (an eager Triton or Gluon launch costs 40-90 µs of Python on the H200's host, more than a
1024³ matmul takes: session 13), else eagerly, saying why."""

from __future__ import annotations

import torch

from . import report


def _host_sync(run) -> str | None:
    """What makes `run` synchronize with the host (so that it cannot be a CUDA graph), or None: one eager
    run with torch's sync check raising. A capture that failed would poison later ones instead."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        run()
    except RuntimeError as exc:
        return f"syncs with the host: {report.first_line(exc, 80)}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
    return None


def gpu_ms(run, rep: int = 100) -> tuple[float, str]:
    """(median ms of one call of `run`, how it was timed: "cuda graph" or "eager (why)"). `run` has run once."""
    import triton.testing

    if syncs := _host_sync(run):  # a capture that fails leaves CUDA's default generator unusable after it
        return triton.testing.do_bench(run, rep=rep), f"eager ({syncs})"
    try:
        return triton.testing.do_bench_cudagraph(run, rep=rep), "cuda graph"
    except RuntimeError as exc:  # an operation a capture refuses without syncing: time it as it is
        torch.cuda.synchronize()
        return triton.testing.do_bench(run, rep=rep), f"eager (capture failed: {report.first_line(exc, 80)})"
