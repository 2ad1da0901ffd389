#!/usr/bin/env python3
"""Relative change of every static activation scale (`*.input_scale`) between two
lwquant output folders (e.g. `quant --compute_dtype f32` and `bf16`): median, max,
the Linear with the largest change, and how many changed at all. Standard library
only (reads the safetensors header and the F32/BF16 scalars directly).

usage: tools/compare_input_scales.py OUT_A OUT_B [--json]
"""
import json
import os
import statistics
import struct
import sys


def read_scales(folder):
    files = sorted(f for f in os.listdir(folder) if f.startswith("quant_model_weights") and f.endswith(".safetensors"))
    scales = {}
    for f in files:
        with open(os.path.join(folder, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
            base = 8 + n
            for name, info in header.items():
                if name == "__metadata__" or not name.endswith(".input_scale"):
                    continue
                begin, end = info["data_offsets"]
                fh.seek(base + begin)
                raw = fh.read(end - begin)
                if info["dtype"] == "F32":
                    v = struct.unpack("<f", raw[:4])[0]
                elif info["dtype"] == "BF16":
                    v = struct.unpack("<f", b"\0\0" + raw[:2])[0]
                else:
                    raise SystemExit(f"{name}: unexpected dtype {info['dtype']}")
                scales[name[: -len(".input_scale")]] = v
    return scales


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        raise SystemExit(__doc__)
    a, b = read_scales(args[0]), read_scales(args[1])
    if a.keys() != b.keys():
        raise SystemExit(f"the folders quantize different Linears ({len(a)} vs {len(b)} input_scale tensors)")
    rel = {k: abs(b[k] - a[k]) / a[k] for k in a}
    worst = max(rel, key=rel.get)
    changed = [v for v in rel.values() if v > 0]
    out = {"linears": len(rel), "changed": len(changed),
           "median_rel_change": statistics.median(rel.values()), "mean_rel_change": statistics.fmean(rel.values()),
           "median_rel_change_of_changed": statistics.median(changed) if changed else 0.0,
           "max_rel_change": rel[worst], "max_at": worst, "max_a": a[worst], "max_b": b[worst]}
    by_kind = {}
    for k, v in rel.items():
        by_kind.setdefault(k.rsplit(".", 1)[-1], []).append(v)
    out["by_linear"] = {k: {"median": statistics.median(v), "max": max(v), "changed": sum(1 for x in v if x > 0),
                            "of": len(v)} for k, v in sorted(by_kind.items())}
    if "--json" in sys.argv:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
