# Session 18, call 1 (prepared in session 17 after its device time was spent): LLM.int8()'s masked outlier path past 32 tokens (captured
# at every M), the GPU tests around it, then `lowbit bench linear` at 1 / 16 / 256 / 4096 tokens for its row.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py tests/test_layers.py tests/test_ops_int8_hopper.py \
  -k "llm_int8 or layer_on_cuda or pingpong" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; tail -2 $OUT/tests.txt
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
