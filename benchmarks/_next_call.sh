# Prepared in session 9, NOT yet run: what the next device call could do first.
# Session 9 ran everything it changed on the GPU (the last: calls 8-10, the in-kernel split-K sum). First:
# 0. The dispatch limits: the swapped kernel got faster at 2-64 tokens (split-K summed in the kernel), so the
#    words → swapped (2 tokens) and swapped → dequantize (64) crossovers may have moved. Then bench linear again.
# Open questions:
# 1. Where a W4A16 prefill's time goes now that eager calls skip torch.library's dispatch: the prefill ms of
#    bench generate varied 25-46 ms for bf16 between runs, so time one decoder layer's eager forward at 128 tokens
#    many times instead (benchmarks/host_overhead.py measures one linear).
# 2. The swapped kernel's long-scoreboard stalls (ncu call 2): the source-level view (--section SourceCounters)
#    would say which loads they wait on.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 240 python3 -m pytest -q tests/test_gpu.py tests/test_ops_weight_only.py >> $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
(cd benchmarks && timeout 200 python3 tune_dispatch.py --write --budget-s 170 --out $OUT/dispatch-sweep.json > /tmp/d.log 2>&1); tail -6 /tmp/d.log
cp src/lowbit/ops/weight_only_dispatch.json $OUT/
ncu --clock-control none --kernel-name regex:swapped --launch-skip 2 --launch-count 1 --section SourceCounters \
    --print-details all python3 benchmarks/ncu_gemv.py --swapped --m 16 > $OUT/ncu-source.txt 2>&1; grep -a -i "stall" $OUT/ncu-source.txt | head -20
