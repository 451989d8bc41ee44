"""What the matmul kernels share: the order in which programs visit output tiles."""

from __future__ import annotations

try:
    import triton
    import triton.language as tl
except ImportError:  # the kernels' modules fall back to their reference paths
    triton = grouped_tile = None

if triton is not None:

    @triton.jit
    def grouped_tile(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
        """(pid_m, pid_n) of program `pid` in grouped order: GROUP_M row-tiles share the same
        column-tiles of B (the weights) while those sit in L2."""
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        per_group = GROUP_M * num_pid_n
        first_m = (pid // per_group) * GROUP_M
        group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)
        return first_m + (pid % per_group) % group_rows, (pid % per_group) // group_rows
