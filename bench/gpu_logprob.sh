#!/usr/bin/env bash
# GPU check of the log-prob kernels: Triton vs the reference on CUDA (fp32, bf16), the benchmark, and TFLOP/s.
#     bash bench/gpu_logprob.sh            (repo root, one CUDA GPU; results also go to $OUT when set)
# Steps: environment; tests/test_kernels_triton.py on CUDA; a check at default block sizes and larger shapes;
# the bf16 torch.matmul rate of this card; bench/logprob.py (naive, chunked, grad-in-fwd, triton, liger if any);
# the Triton forward in TFLOP/s against that matmul rate.
set -u
OUT=${OUT:-/tmp/gpu_logprob}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

python -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name())' \
  || pip install triton
python -c 'import pytest' 2>/dev/null || pip install pytest || true
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true

echo "== tests/test_kernels_triton.py on CUDA"
if python -c 'import pytest' 2>/dev/null; then
  timeout 90 python -m pytest tests/test_kernels_triton.py -q -p no:cacheprovider 2>&1 | tail -15
fi

echo "== default blocks, larger shapes (not multiples of any block)"
timeout 45 python - <<'PY'
import torch
from kernels import fused_linear_logprob
for dtype, n, h, v in [(torch.float32, 1000, 320, 5003), (torch.bfloat16, 1000, 576, 49_152), (torch.bfloat16, 77, 4096, 128_256)]:
    g = torch.Generator(device="cuda").manual_seed(0)
    hid = torch.randn(n, h, device="cuda", generator=g).to(dtype).requires_grad_()
    w = (torch.randn(v, h, device="cuda", generator=g) / h ** 0.5).to(dtype).requires_grad_()
    t = torch.randint(0, v, (n,), device="cuda", generator=g)
    go, ge = torch.randn(n, device="cuda", generator=g), torch.randn(n, device="cuda", generator=g)
    res = {}
    for impl, hh, ww in [("triton", hid, w), ("reference", hid, w),
                         ("exact", hid.detach().double().requires_grad_(), w.detach().double().requires_grad_())]:
        lp, ent = fused_linear_logprob(hh, ww, t, 0.7, return_entropy=True, impl="reference" if impl == "exact" else impl)
        grads = torch.autograd.grad((lp * go).sum() + (ent * ge).sum(), (hh, ww))
        res[impl] = [x.detach().double() for x in (lp, ent, *grads)]
    names = ["logp", "entropy", "grad_hidden", "grad_weight"]
    for name, a, b, e in zip(names, res["triton"], res["reference"], res["exact"]):
        print(f"{str(dtype):15s} N={n} H={h} V={v} {name:12s} max|triton-exact|={float((a - e).abs().max()):.2e}"
              f"  max|reference-exact|={float((b - e).abs().max()):.2e}  max|exact|={float(e.abs().max()):.2e}")
PY

echo "== bf16 matmul rate"
timeout 20 python - <<'PY' | tee "$OUT/matmul.txt"
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): a @ b
torch.cuda.synchronize(); dt = (time.perf_counter() - t) / 20
print(f"matmul_bf16_tflops {2 * 8192**3 / dt / 1e12:.1f}")
PY

echo "== benchmark (bf16)"
timeout 120 python bench/logprob.py --repeats 5 --json "$OUT/bench.json" 2>"$OUT/bench.log" | tee "$OUT/bench.md"
tail -3 "$OUT/bench.log"

python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
rate = float(open(f"{out}/matmul.txt").read().split()[-1])
for r in json.load(open(f"{out}/bench.json")):
    if r["path"] == "triton":
        tf = 2 * r["N"] * r["H"] * r["V"] / r["fwd_s"] / 1e12
        tb = 6 * r["N"] * r["H"] * r["V"] / r["fwdbwd_s"] / 1e12  # recompute makes it 8 NHV in fact
        print(f"triton {r['model']} N={r['N']}: fwd {tf:.1f} TFLOP/s = {tf / rate:.0%} of bf16 matmul {rate:.0f};"
              f" fwd+bwd {tb:.1f} useful TFLOP/s (6NHV)")
PY
