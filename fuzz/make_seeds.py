#!/usr/bin/env python3
"""Regenerates fuzz/corpus/<target>/ from the repository's real files.

Run from anywhere: python3 fuzz/make_seeds.py. Every seed is small (a few
KiB, the tokenizer.json ones up to ~50 KiB) so that libFuzzer's default
-max_len stays useful. Needs only the Python standard library.
"""
import hashlib
import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(p, mode="rb"):
    with open(p, mode) as f:
        return f.read()


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- safetensors
DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
              "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(entries, metadata=None, pad_to=8, data_fill=None):
    """entries: [(name, dtype, shape)] laid out in order; returns file bytes."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for i, (name, dtype, shape) in enumerate(entries):
        n = DTYPE_SIZE[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        blob = bytes((i * 31 + j * 7) % 251 for j in range(n)) if data_fill is None else data_fill * n
        blobs.append(blob)
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % pad_to)  # as the reference writer pads
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def header_of(p):
    raw = read(p)
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


def shrink_real(p, max_bytes=2048, limit=12):
    """The real file's tensors (header order), keeping small ones whole and
    shrinking the others to their first dimension 1 (or dropping them)."""
    entries = []
    for name, e in header_of(p).items():
        if name == "__metadata__":
            continue
        shape = list(e["shape"])
        n = DTYPE_SIZE[e["dtype"]] * (1 if not shape else __import__("math").prod(shape))
        while n > max_bytes and shape and shape[0] > 1:
            shape[0] = 1
            n = DTYPE_SIZE[e["dtype"]] * __import__("math").prod(shape)
        if n <= max_bytes:
            entries.append((name, e["dtype"], shape))
        if len(entries) >= limit:
            break
    meta = header_of(p).get("__metadata__")
    return safetensors(entries, meta)


def seeds_safetensors():
    t = "safetensors"
    put(t, "stories260K_small.safetensors", shrink_real(path("examples/stories260K/model.safetensors")))
    for fam in ["llama", "qwen2", "qwen3", "mistral"]:
        d = path("tests/data/goldens", fam)
        f = "model-00001-of-00005.safetensors" if fam == "mistral" else "model.safetensors"
        put(t, f"golden_{fam}_small.safetensors", shrink_real(os.path.join(d, f), limit=8))
    put(t, "golden_reference_small.safetensors", shrink_real(path("tests/data/goldens/llama/reference.safetensors"), limit=4))
    # Every dtype once, with metadata.
    put(t, "all_dtypes.safetensors", safetensors(
        [(f"t.{dt.lower()}", dt, [2, 3]) for dt in DTYPE_SIZE], {"format": "pt", "note": "all dtypes"}))
    # An ascendV1 shard: int8 weight and the W8A8 side tensors.
    put(t, "w8a8_linear.safetensors", safetensors([
        ("q.weight", "I8", [4, 8]), ("q.quant_bias", "I32", [4]), ("q.input_scale", "F32", [1]),
        ("q.input_offset", "F32", [1]), ("q.deq_scale", "I64", [4]), ("k.weight_scale", "F32", [4, 1])]))
    # Edge shapes: scalar, zero-element, empty name.
    put(t, "edge_shapes.safetensors", safetensors([
        ("scalar", "F32", []), ("empty", "F16", [0, 5]), ("", "BF16", [1]), ("big0", "I8", [0, 1 << 40])]))
    put(t, "empty_header.safetensors", struct.pack("<Q", 8) + b"{}      ")
    put(t, "metadata_only.safetensors", safetensors([], {"total_size": "0"}))


# ------------------------------------------------------------- model_config
def seeds_model_config():
    t = "model_config"
    put(t, "stories260K.json", read(path("examples/stories260K/config.json")))
    put(t, "stories260K_qwen2.json", read(path("tests/data/models/stories260K-qwen2/config.json")))
    gold = path("tests/data/goldens")
    for fam in sorted(os.listdir(gold)):
        for f in ["config.json", "config_legacy.json"]:
            p = os.path.join(gold, fam, f)
            if os.path.exists(p):
                put(t, f"golden_{fam}_{f}", read(p))
    mixtral = os.path.join(SHARED, "models", "stories260K-mixtral", "config.json")
    if os.path.exists(mixtral):
        put(t, "stories260K_mixtral.json", read(mixtral))  # an unsupported model_type


# ----------------------------------------------------------- service_config
def seeds_service_config():
    t = "service_config"
    for d in ["configs", "tests/data/configs"]:
        for f in sorted(os.listdir(path(d))):
            if f.endswith(".yaml"):
                put(t, f, read(path(d, f)))


# ---------------------------------------------------------------- tokenizer
def trimmed_qwen3(keep=600):
    d = json.loads(read(os.path.join(SHARED, "tokenizers/qwen3/tokenizer.json"), "r"))
    m = d["model"]
    vocab = {k: v for k, v in m["vocab"].items() if v < keep}
    merges = []
    for a, b in m["merges"]:
        if a in vocab and b in vocab and a + b in vocab:
            merges.append([a, b])
    m["vocab"], m["merges"] = vocab, merges
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def seeds_tokenizer():
    t = "tokenizer"
    stories = read(path("examples/stories260K/tokenizer.json"))
    put(t, "stories260K.json", stories)
    put(t, "stories260K_with_config.json", stories + b"\0" + read(path("examples/stories260K/tokenizer_config.json")))
    for f in ["synth_bytelevel", "synth_metaspace_first", "synth_metaspace_always", "synth_metaspace_never"]:
        tok = json.loads(read(path("tests/data/tokenizer", f + ".json")))["tokenizer"]
        put(t, f + ".json", json.dumps(tok, ensure_ascii=False, separators=(",", ":")))
    qwen_cfg = os.path.join(SHARED, "tokenizers/qwen3/tokenizer_config.json")
    if os.path.exists(qwen_cfg):
        q = trimmed_qwen3().encode()
        put(t, "qwen3_trimmed.json", q)  # also tokenizer_encode_fuzz's fallback
        cfg = json.loads(read(qwen_cfg))
        cfg.pop("chat_template", None)
        put(t, "qwen3_trimmed_with_config.json", q + b"\0" + json.dumps(cfg, separators=(",", ":")).encode())


def seeds_tokenizer_encode():
    t = "tokenizer_encode"
    texts = []
    for c in json.loads(read(path("tests/data/tokenizer/qwen3_extra_golden.json"))):
        texts.append(c["text"])
    g = os.path.join(SHARED, "tokenizers/qwen3/golden_ids.json")
    if os.path.exists(g):
        texts += [c["text"] for c in json.loads(read(g))]
    for c in json.loads(read(path("tests/data/tokenizer/synth_bytelevel.json")))["cases"]:
        texts.append(c["text"])
    texts += [json.loads(line)["inputs_pretokenized"][:400]
              for line in read(path("calib/calib_zh_en.jsonl"), "r").splitlines()[:12] if line.strip()]
    seen = set()
    for i, text in enumerate(texts):
        data = text.encode()[:512]
        if data in seen:
            continue
        seen.add(data)
        for tok in range(4):  # first byte: which tokenizer (see tokenizer_encode_fuzz.cc)
            if (i + tok) % 2 == 0 or tok == 3:
                put(t, f"text{i:03d}_tok{tok}", bytes([tok]) + data)


# ------------------------------------------------------------ calib_dataset
def seeds_calib_dataset():
    t = "calib_dataset"
    lines = read(path("calib/calib_zh_en.jsonl")).splitlines(keepends=True)
    put(t, "calib_head.jsonl", b"".join(lines[:3])[:3000])
    put(t, "calib_tail.jsonl", b"".join(lines[-2:])[-2000:])
    put(t, "raw_lines.jsonl", "plain text line\n{\"other_key\": 1}\n\n{\"inputs_pretokenized\": \"x\"}\r\n")
    put(t, "array.json", json.dumps(["Once upon a time", "逐层量化", "", "line\nbreak"], ensure_ascii=False))
    put(t, "array_bad.json", '["ok", 3, null]')


# --------------------------------------------------------- quantized_folder
# The fixed folder of quantized_folder_fuzz.cc.
L0 = "model.layers.0."
W8A8 = ["weight", "quant_bias", "input_scale", "input_offset", "deq_scale"]
PER_CHANNEL = ["weight", "weight_scale", "weight_offset"]


def description(types, extra=None):
    d = {"model.embed_tokens.weight": "FLOAT", L0 + "input_layernorm.weight": "FLOAT"}
    layout = {"self_attn.q_proj": W8A8, "self_attn.k_proj": PER_CHANNEL,
              "self_attn.v_proj": PER_CHANNEL + ["bias"], "self_attn.o_proj": ["weight"],
              "mlp.gate_proj": W8A8, "mlp.up_proj": W8A8, "mlp.down_proj": ["weight"]}
    for lin, tensors in layout.items():
        for name in tensors:
            d[f"{L0}{lin}.{name}"] = types.get(lin, "FLOAT")
    d["model.norm.weight"] = "FLOAT"
    d.update({"version": "1.0.0", "model_quant_type": "W8A8", "metadata": {}, "group_size": 0, "optional": {}})
    d.update(extra or {})
    return json.dumps(d, indent=4)


def seeds_quantized_folder():
    t = "quantized_folder"
    ok = {"self_attn.q_proj": "W8A8", "self_attn.k_proj": "W8A8_DYNAMIC", "self_attn.v_proj": "W8A16"}
    put(t, "valid.json", description(ok))
    put(t, "refused_offset.json", description(dict(ok, **{"mlp.gate_proj": "W8A8"})))
    put(t, "refused_scale.json", description(dict(ok, **{"mlp.up_proj": "W8A8"})))
    put(t, "refused_rank.json", description(dict(ok, **{"mlp.down_proj": "W8A16"})))
    put(t, "float_as_w8a16.json", description(dict(ok, **{"self_attn.o_proj": "W8A16"})))
    put(t, "layout_mismatch.json", description({"self_attn.q_proj": "W8A16", "self_attn.k_proj": "W8A8"}))
    put(t, "kv_keys.json", description(ok, {"kv_cache_type": "C8", "model.layers.0.self_attn.k_proj.quant_type": "x"}))
    put(t, "unknown_type.json", description(dict(ok, **{"self_attn.v_proj": "W4A16"})))


def main():
    if os.path.exists(CORPUS):
        shutil.rmtree(CORPUS)
    for f in [seeds_safetensors, seeds_model_config, seeds_service_config, seeds_tokenizer,
              seeds_tokenizer_encode, seeds_calib_dataset, seeds_quantized_folder]:
        f()
    total = 0
    for d in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, d))
        size = sum(os.path.getsize(os.path.join(CORPUS, d, f)) for f in files)
        total += size
        print(f"{d}: {len(files)} seeds, {size} bytes")
    print(f"total: {total} bytes")


if __name__ == "__main__":
    sys.exit(main())
