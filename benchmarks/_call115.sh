# Session 26, call 1 (carry [".whl"]), on the H100: session 25's call 1 again (its results were lost with the session):
# the decode step's kernels for bf16 and W4A16 with their launch counts, then W4A16's step with the decoder RMSNorms
# dropped (the ceiling of fusing them into the GEMVs), bench matmul with today's kernels, bench generate on 13B.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit
export PYTHONPATH=$PWD/src:$PWD/benchmarks:/tmp/site
R=/tmp/r; mkdir -p $R
keep() { tar -C $R -cf $OUT/results.tar .; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $R/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" | tee -a $R/gpu.txt
timeout 150 python3 benchmarks/profile_kernels.py --out $R/decode.json --decode bf16 w4a16-g128 --attention lowbit > $R/decode.log 2>&1
echo "profile rc=$? s=$SECONDS"; keep; grep -v Warn $R/decode.log | grep -a "µs" | head -44 | cut -c1-150
timeout 90 python3 benchmarks/profile_kernels.py --out $R/decode-no-norms.json --decode w4a16-g128 --no-norms > $R/decode-no-norms.log 2>&1
echo "no-norms rc=$? s=$SECONDS"; keep; grep -v Warn $R/decode-no-norms.log | grep -a "µs" | head -16 | cut -c1-150
timeout 170 python3 -m lowbit.cli bench matmul --out $R/matmul > $R/matmul.log 2>&1
echo "matmul rc=$? s=$SECONDS"; keep; grep -a "^| \|^###" $R/matmul/report.md | cut -c1-200 | head -40
timeout $((580 - SECONDS)) python3 -m lowbit.cli bench generate --models 13b --schemes bf16 w4a16-g128 w8a16 nf4 --out $R/generate13 > $R/generate13.log 2>&1
echo "generate13 rc=$? s=$SECONDS"; keep; grep -a "^| 13b" $R/generate13/report.md | cut -c1-220; tail -3 $R/generate13.log
