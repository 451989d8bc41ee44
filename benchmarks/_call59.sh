# Session 14, call 3: int8 training's Inductor code (which ops each fused kernel holds: the SiLU backward at 16.3 ms
# against bf16's 11.2, a 4.6 ms "clamp_min_div_new_full" kernel), and its profile on the same run.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
TORCH_LOGS=output_code timeout 300 python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --out $OUT > /tmp/oc.log 2>&1
echo "rc=$? s=$SECONDS"; gzip -c /tmp/oc.log > $OUT/output-code-int8.log.gz; ls -la $OUT; head -12 $OUT/profile-int8.txt
