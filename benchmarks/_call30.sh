# Session 10, call 1: 128-token tiles of the swapped kernel at 64-4096 tokens (benchmarks/_exp_tall.py)
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
cd benchmarks && timeout 520 python3 _exp_tall.py $OUT/tall.json 430 2>&1 | tail -40
