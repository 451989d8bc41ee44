# Prepared in session 10, NOT yet run: what the next device call could do first.
# Session 10 ran everything it changed on the GPU (calls 1-9, docs/benchmarks/README.md "Session 10"). Open questions:
# 1. Issue 5 has no H200 profile: where a step's GPU time goes at the issue's 16 × 2048 (session 5's profile was an
#    H100 at 8 × 2048). The first command below. Then the cheapest measured cut: q/k/v (and gate/up) quantize one
#    shared input three (two) times a layer; an opaque custom op for the forward's rows-and-columns codes would let
#    Inductor's CSE merge them (checked on the CPU in session 5), ~2 % of the step and ~3.6 GB of saved codes.
# 2. The swapped kernel's zero points go through shared memory every K-step (ncu, session 10 call 2: 17.7 % of the
#    stall samples on that STS.U8, waiting on the zero point's global load). Loading it a step ahead was slower.
#    Counted on the CPU after the call: only the 128-row tile (4 warps, taken for N ≥ 8192 at ≤ 16 tokens) converts
#    the zero points through shared memory (STS in its loop); the 64-row tile loads them straight into their layout
#    (no STS), but 128 rows were faster anyway (session 9: 19.3 against 22.1 µs on 4096→11008 at one token). Two 64-row
#    halves a program (two dots sharing x's tile, each half's zero points loaded in its own layout) might keep both.
# 3. NF4 b64 at 2-64 tokens (0.63-0.82x): group 64 makes the swapped kernel's K-steps 64 deep. Codes scaled before
#    the MMA (the reference rounds the dequantized weight to x's dtype too) would allow 128-deep steps over 2 groups.
# 4. A fused weight-only kernel past 128 tokens needs the dequantization overlapped with the MMA (session 10 call 1:
#    tall tiles at half of cuBLAS): try `tl.range(..., warp_specialize=True)` on sm_90 with Triton 3.6, or Gluon.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 500 python3 benchmarks/profile_train.py --precisions bf16 int8 fp8-rowwise --batch-size 16 --out $OUT/profile > /tmp/p.log 2>&1
tail -30 /tmp/p.log
