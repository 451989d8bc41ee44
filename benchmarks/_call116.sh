# Session 26, call 2 (carry [".whl"]), on the H100: bench matmul with today's kernels (the committed H100 table is
# session 3's; session 25's run was lost with that session), then bench generate on the 13B shape with the RMSNorms
# fused (the default now). One tar, re-made after each step.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit
export PYTHONPATH=$PWD/src:$PWD/benchmarks:/tmp/site
R=/tmp/r; mkdir -p $R
keep() { tar -C $R -cf $OUT/results.tar .; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $R/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" | tee -a $R/gpu.txt
timeout 170 python3 -m lowbit.cli bench matmul --out $R/matmul > $R/matmul.log 2>&1
echo "matmul rc=$? s=$SECONDS"; keep; grep -a "^| \|^###" $R/matmul/report.md | cut -c1-200 | head -40
timeout $((580 - SECONDS)) python3 -m lowbit.cli bench generate --models 13b --schemes bf16 w4a16-g128 w8a16 nf4 --out $R/generate13 > $R/generate13.log 2>&1
echo "generate13 rc=$? s=$SECONDS"; keep; grep -a "^| 13b" $R/generate13/report.md | cut -c1-220; tail -3 $R/generate13.log
