# Session 24, call 1 (carry [".whl"]), on an H100 (nvidia-h100-x1: the kind issue 4's targets were set on, lent again
# after sessions 7-23 ran on H200s): the dispatch limits re-swept with today's kernels (the H100 had only DEFAULT_LIMITS,
# from sessions 4-6), then bench linear with the peers, dispatching by them. Everything goes into one tar ($OUT returns
# 8 files at most), re-made after each step so a timeout keeps what finished.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:$PWD/benchmarks:/tmp/site
R=/tmp/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $R/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" | tee -a $R/gpu.txt
keep() { tar -C $R -cf $OUT/results.tar .; }
timeout 200 python3 -m lowbit.cli bench dispatch --write-to $R/dispatch/limits.json --out $R/dispatch > $R/dispatch.log 2>&1
echo "dispatch rc=$? s=$SECONDS"; keep; grep -a "^| " $R/dispatch/report.md | cut -c1-200; cat $R/dispatch/limits.json
[ -f $R/dispatch/limits.json ] && export LOWBIT_DISPATCH_FILE=$R/dispatch/limits.json
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 32 64 128 256 4096 \
  --peers bnb-nf4 bnb-int8 torchao-int8 torchao-fp8 --out $R/linear > $R/linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; keep; grep -a "^| " $R/linear/report.md | head -20 | cut -c1-330
