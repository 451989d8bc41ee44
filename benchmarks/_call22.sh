# session 7, call 3, on an NVIDIA H200 (no peers: call 1 ran them, `_call20.sh` / `_call21.sh`). GPU tests of what
# changed since (NF4 pair table in the byte kernels, W8A8 signed codes by one LOP3, W8A8 weight-only up to 16
# tokens, FP8 fast accumulation, dispatch limits per GPU); the dispatch sweep, which writes this GPU's limits
# into src/lowbit/ops/weight_only_dispatch.json before the benches read it; bench linear (with an FP8
# weight-only row); bench train's FP8 rows against bf16; a short word-GEMV tile sweep; bench generate 7b.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt  # 8 files come back: logs stay in /tmp
timeout 140 python3 -m pytest -q tests/test_ops_weight_only.py tests/test_gpu.py >> $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
(cd benchmarks && timeout 170 python3 tune_dispatch.py --write --budget-s 140 --out $OUT/dispatch-sweep.json > /tmp/dispatch.log 2>&1)
echo "rc=$? s=$SECONDS"; grep -a "limits\|wrote\|Error" /tmp/dispatch.log | cut -c1-200; cp src/lowbit/ops/weight_only_dispatch.json $OUT/ 2>/dev/null
timeout $((400 - SECONDS)) python3 -m lowbit.cli bench linear --peers --out $OUT/linear > /tmp/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" /tmp/linear.log | cut -c1-200
timeout $((500 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 fp8-rowwise fp8-tensorwise --peers --out $OUT/train > /tmp/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|" | tail -5
(cd benchmarks && timeout $((540 - SECONDS)) python3 tune_words_split.py --schemes int4-g128-zero --splits 1 \
  --tiles 8x128x4 8x256x8 8x512x8 4x512x8 16x256x8 --budget-s 30 --out $OUT/words-h200.json > /tmp/words.log 2>&1)
echo "rc=$? s=$SECONDS"; cut -c1-300 /tmp/words.log | tail -3
timeout $((590 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 nf4 \
  --out $OUT/generate > /tmp/generate.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/generate.log | grep -a "^|" | tail -4 | cut -c1-200
rm -f $OUT/*/*.png $OUT/generate/report.md $OUT/linear/report.md  # drawn again here from results.json: 8 files come back
find $OUT -type f | sort
