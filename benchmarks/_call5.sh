# session 4, call 1: word-GEMV sweep + ncu of both GEMVs; training throughput of every precision
# the committed int8 training path (a helper is editing these files here)
for f in src/lowbit/train/linear.py src/lowbit/ops/int8.py src/lowbit/ops/__init__.py; do cp benchmarks/_snap_head/$(echo $f | tr / _) $f; done
export PYTHONPATH=$PWD/src
timeout 250 python3 benchmarks/tune_gemv_words.py --out $OUT/tune-words.json --asm-dir $OUT/asm > $OUT/tune.log 2>&1; tail -3 $OUT/tune.log
timeout 60 ncu --clock-control none --kernel-name regex:gemv --launch-skip 3 --launch-count 2 --section SpeedOfLight --section Occupancy --section WarpStateStats --section InstructionStats --section LaunchStats python3 benchmarks/ncu_gemv.py > $OUT/ncu.txt 2>&1; tail -3 $OUT/ncu.txt
timeout 270 python3 -m lowbit.cli bench train --preset llama2-1b --precisions bf16 int8 int8-fwd int8-fwd-gi fp8-rowwise fp8-tensorwise int8-weight --batch-size 8 --seq-len 2048 --steps 6 --warmup-steps 3 --out $OUT/train > $OUT/train.log 2>&1; tail -12 $OUT/train.log
