"""Fraction of weights a run changed: its model.safetensors against the tiny model it started from.

    python benchmarks/gpu_smoke/weights_changed.py RUN_DIR
"""
import sys

from safetensors.torch import load_file

base = load_file("tests/assets/tiny-qwen2/model.safetensors")
new = load_file(sys.argv[1] + "/model.safetensors")
total = changed = 0
maxd = 0.0
dtypes = set()
for k, v in base.items():
    if k not in new:
        print("missing in trained:", k)
        continue
    w = new[k]
    dtypes.add(str(w.dtype))
    b = v.to(w.dtype)  # compare at the saved precision
    diff = (w.float() - b.float()).abs()
    total += diff.numel()
    changed += int((diff > 0).sum())
    maxd = max(maxd, float(diff.max()))
print(f"wdiff {sys.argv[1]}: saved dtype(s) {sorted(dtypes)}; {changed}/{total} elements changed "
      f"({100 * changed / max(total, 1):.2f}%), max |delta| {maxd:.3g}")
