"""GPU benchmarks: each writes JSON and prints a markdown table; speedups are against bf16 in the same run."""
