# Session 23, call 4: what the swapped kernel's warps wait on (ncu's stall reasons a issued instruction, int4 g128 on
# 4096 → 11008), the whole weight-only GPU test file, bench linear and bench generate with this session's changes
export PYTHONPATH=$PWD/src:$PWD/benchmarks
for m in 16 64; do
  timeout 60 ncu --clock-control none --kernel-name regex:swapped --launch-skip 2 --launch-count 1 --section SchedulerStats \
    --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
    python3 benchmarks/ncu_gemv.py --swapped --m $m > $OUT/ncu-stalls-m$m.txt 2>&1
  echo "ncu m=$m rc=$? s=$SECONDS"
  grep -a "stalled" $OUT/ncu-stalls-m$m.txt | sort -k3 -n -r | head -8 | sed 's/smsp__average_warps_issue_stalled_//; s/_per_issue_active.ratio//'
done
timeout 210 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
timeout 130 python3 -m lowbit.cli bench linear --m 1 16 32 64 128 256 4096 --out $OUT/linear > /dev/null 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-300
timeout 150 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 nf4 --out $OUT/generate > /dev/null 2>&1
echo "generate rc=$? s=$SECONDS"; grep -a "^| 7b" $OUT/generate/report.md | cut -c1-200
