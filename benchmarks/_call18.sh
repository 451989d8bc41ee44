# session 6, call 6 (carry [".whl"]): bench linear again, peers side by side (call 5's run ended in model_bytes
# on torchao's tensor-subclass weights, now counted through their inner tensors)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
timeout 280 python3 -m lowbit.cli bench linear --out $OUT/linear > $OUT/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" $OUT/linear.log | cut -c1-220
