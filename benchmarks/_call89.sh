# Session 19, call 7: bench linear with 8 outlier feature columns (±20 in every row) in every input, as LLMs have:
# LLM.int8() pays for its outlier list and product there, and W8A8's per-token error shows; the LLM.int8() kernels.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 60 python3 benchmarks/profile_kernels.py --out $OUT/profile.json --linear "LLM.int8() (Triton)" --tokens 256 4096 --outlier-cols 8 > $OUT/profile.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -v Warn $OUT/profile.log | cut -c1-120
timeout 200 python3 -m lowbit.cli bench linear --m 1 16 256 4096 --outlier-cols 8 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| \|outlier" $OUT/linear/report.md | cut -c1-200
