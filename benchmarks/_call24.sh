# session 8, call 1, on an NVIDIA H200: the GPU tests (session 7's Conv1D fix not yet run on a GPU; the word GEMV now
# reads V consecutive words a column and shifts its top codes once a word); the word GEMV tile × V × PREFETCH on
# weights read from memory (not the L2); ncu of the old tile and of the candidates on 4096→11008.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 170 python3 -m pytest -q tests/test_gpu.py tests/test_ops_weight_only.py tests/test_ops_fp8.py >> $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
echo "s=$SECONDS"
(cd benchmarks && timeout 200 python3 tune_words_split.py --schemes int4-g128-zero int8-channel --splits 1 --vs 1 2 4 \
  --tiles 8x128x2 8x128x4 8x256x4 8x64x1 16x128x4 4x128x2 --budget-s 170 --out $OUT/words.json > /tmp/w.log 2>&1)
echo "rc=$? s=$SECONDS"; grep -a "best" /tmp/w.log | python3 -c "
import sys, json
for l in sys.stdin:
    d = json.loads(l); print(d['scheme'], d['k'], d['n'], 'bf16 %.2f default %.2f' % (d['bf16_us'], d['default_us']), [('%.2f' % u, c) for u, c in d['best'][:3]])"
timeout 100 ncu --clock-control none --kernel-name regex:gemv_words --section SpeedOfLight --section WarpStateStats \
  --section SchedulerStats --section Occupancy python3 benchmarks/ncu_gemv.py --k 4096 --n 11008 \
  --tiles 8x128x1x4x1 8x128x2x2x0 8x128x4x2x0 8x256x2x4x0 > $OUT/ncu.txt 2>&1
echo "rc=$? s=$SECONDS"; grep -a "Duration\|Issue Slots Busy\|No Eligible\|Achieved Occupancy\|Memory Throughput\|DRAM Throughput" $OUT/ncu.txt | head -40
