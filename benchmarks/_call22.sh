# session 7, call 3, on an NVIDIA H200 (no peers: call 1 ran them, `_call20.sh` / `_call21.sh`): GPU tests of what
# changed since (NF4 pair table in the byte kernels, W8A8 signed codes by one LOP3, W8A8 weight-only up to 16
# tokens, FP8 fast accumulation in inference and the training forward), each NF4 path timed, bench linear with an
# FP8 weight-only row, bench train's FP8 rows against bf16, bench generate 7b for bf16 / W4A16 / NF4.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt  # 8 files come back: logs stay in /tmp
timeout 170 python3 -m pytest -q tests/test_ops_weight_only.py tests/test_gpu.py tests/test_ops_fp8.py >> $OUT/tests.txt 2>&1
tail -2 $OUT/tests.txt
(cd benchmarks && timeout 60 python3 paths_nf4.py --out $OUT/paths-nf4.json > /tmp/paths-nf4.txt 2>&1); tail -9 /tmp/paths-nf4.txt | cut -c1-220
timeout $((400 - SECONDS)) python3 -m lowbit.cli bench linear --peers --out $OUT/linear > /tmp/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" /tmp/linear.log | cut -c1-200
timeout $((500 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 fp8-rowwise fp8-tensorwise --peers --out $OUT/train > /tmp/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|" | tail -5
timeout $((590 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 nf4 \
  --out $OUT/generate > /tmp/generate.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/generate.log | grep -a "^|" | tail -4 | cut -c1-200
rm -f $OUT/*/*.png  # drawn again here from results.json
find $OUT -type f | sort
