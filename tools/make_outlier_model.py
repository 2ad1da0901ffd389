#!/usr/bin/env python3
"""A copy of an f32 Llama-family model folder with injected outlier channels (issue 9 quality evidence).

x50 on input channels 3, 17, 42 of every input_layernorm / post_attention_layernorm (and /50 on those columns of
q/k/v and gate/up), and x50 on rows 5, 99 of every up_proj (/50 on those columns of down_proj): the float function
is unchanged, so the float perplexity is the original's and every difference after quantization is quantization
error. The same transform as src/runner/smoothing_runner_test.cc and src/processors/outlier_quality_test.cc.

Usage: tools/make_outlier_model.py examples/stories260K build/stories260K-outliers   (pure Python, no numpy)
"""
import array
import json
import shutil
import struct
import sys
from pathlib import Path


def read_safetensors(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{name}: only F32 checkpoints are supported, got {info['dtype']}")
        a = array.array("f")
        b, e = info["data_offsets"]
        a.frombytes(data[base + b:base + e])
        tensors[name] = (info["shape"], a)
    return tensors


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, (shape, a) in tensors.items():
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def main():
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file() and p.name != "model.safetensors":
            shutil.copy(p, dst / p.name)
    cfg = json.loads((src / "config.json").read_text())
    H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    t = read_safetensors(src / "model.safetensors")
    f = 50.0
    for k in range(L):
        p = f"model.layers.{k}."
        for c in (3, 17, 42):
            t[p + "input_layernorm.weight"][1][c] *= f
            t[p + "post_attention_layernorm.weight"][1][c] *= f
            for lin in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
                w = t[p + lin + ".weight"][1]
                for r in range(len(w) // H):
                    w[r * H + c] /= f
        for c in (5, 99):
            up, down = t[p + "mlp.up_proj.weight"][1], t[p + "mlp.down_proj.weight"][1]
            for j in range(H):
                up[c * H + j] *= f
            for r in range(H):
                down[r * I + c] /= f
    write_safetensors(dst / "model.safetensors", t)


if __name__ == "__main__":
    main()
