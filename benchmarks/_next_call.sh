# Prepared in session 8, NOT yet run: what the next device call should do first.
# 1. The GPU tests in full; session 8's calls cut them at their time limits, so give them 300 s.
#    The refactors after its last call (tiles.cuda_index) ran on the CPU only.
# 2. bench linear and generate on the final code (session 8's call 2 ran before the plain cdiv, which affects
#    only eager launches: decode replays CUDA graphs).
# 3. Then (not scripted yet): where W4A16 prefill's ~31 ms over bf16 goes, host against kernel time of one 128-token
#    prefill under the torch profiler.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 300 python3 -m pytest -q tests/test_gpu.py tests/test_ops_weight_only.py tests/test_ops_fp8.py tests/test_ops_w4a16.py >> $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
timeout 120 python3 -m lowbit.cli bench linear --out $OUT/linear > /tmp/linear.log 2>&1; grep -a "^|" /tmp/linear.log | cut -c1-200
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 --out $OUT/generate > /tmp/g.log 2>&1
tr '\r' '\n' < /tmp/g.log | grep -a "^|" | tail -3 | cut -c1-200; rm -f $OUT/*/*.png $OUT/*/report.md
