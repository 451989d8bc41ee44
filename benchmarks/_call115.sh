# Session 26, call 1, on the H100: the RMSNorms fused into the weight-only GEMVs (`models.fused_norms`): their GPU
# tests, then the 7B decode step's kernels for W4A16 with them fused and not. ~200 s: failed starts ate the session's
# device time. One tar, re-made after each step.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
R=/tmp/r; mkdir -p $R
keep() { tar -C $R -cf $OUT/results.tar .; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $R/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" | tee -a $R/gpu.txt
timeout 50 python3 -m pytest -q -x tests/test_fused_norms.py > $R/tests.log 2>&1
echo "tests rc=$? s=$SECONDS"; keep; tail -15 $R/tests.log | cut -c1-200
timeout 70 python3 benchmarks/profile_kernels.py --out $R/decode-fused.json --decode w4a16-g128 --fuse-norms > $R/decode-fused.log 2>&1
echo "fused rc=$? s=$SECONDS"; keep; grep -v Warn $R/decode-fused.log | grep -a "µs" | head -16 | cut -c1-150
timeout $((195 - SECONDS)) python3 benchmarks/profile_kernels.py --out $R/decode.json --decode w4a16-g128 > $R/decode.log 2>&1
echo "unfused rc=$? s=$SECONDS"; keep; grep -v Warn $R/decode.log | grep -a "µs" | head -16 | cut -c1-150
