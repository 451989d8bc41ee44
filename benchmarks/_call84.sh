# Session 19, call 2: kernel-by-kernel profiles (benchmarks/profile_kernels.py): the 7B decode step for bf16 and
# W4A16 (where the ~0.8-1.1 ms a step outside the linears goes), and bench linear's layers where they lose to bf16
# (LLM.int8() and W8A8 at 256 tokens, NF4 and W4A16 at 16).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 benchmarks/profile_kernels.py --out $OUT/linear256.json --linear "bf16" "LLM.int8() (Triton)" "W8A8 int8 (Triton)" --tokens 256 > $OUT/linear256.log 2>&1
echo "linear256 rc=$? s=$SECONDS"
timeout 100 python3 benchmarks/profile_kernels.py --out $OUT/linear16.json --linear "NF4 b64 (Triton)" "W4A16 g128 (Triton)" --tokens 16 > $OUT/linear16.log 2>&1
echo "linear16 rc=$? s=$SECONDS"
timeout $((560 - SECONDS)) python3 benchmarks/profile_kernels.py --out $OUT/decode.json --decode bf16 w4a16-g128 > $OUT/decode.log 2>&1
echo "decode rc=$? s=$SECONDS"
cat $OUT/linear256.log $OUT/linear16.log | grep -v Warning | cut -c1-150 | head -90
grep -v Warning $OUT/decode.log | cut -c1-150 | tail -60
