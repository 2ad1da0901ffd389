#!/usr/bin/env python3
"""Regenerates fuzz/corpus/<target>/ from the repository's real files.

Files named regress_* are inputs that once found a bug (committed by hand
from build-fuzz/findings/); they are kept.

Run from anywhere: python3 fuzz/make_seeds.py. Every seed is small (a few
KiB, the tokenizer.json ones up to ~50 KiB) so that libFuzzer's default
-max_len stays useful. Needs only the Python standard library.
"""
import hashlib
import json
import os
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
# Descriptions of fuzz/data/quantized_llama (the fixed folder of
# quantized_folder_fuzz.cc); after a NUL byte, an optional config.json.
def seeds_quantized_folder():
    t = "quantized_folder"
    fixture = path("fuzz/data/quantized_llama")
    desc = json.loads(read(os.path.join(fixture, "quant_model_description.json")))
    config = json.loads(read(os.path.join(fixture, "config.json")))

    def dump(d):
        return json.dumps(d, indent=4)

    put(t, "valid.json", dump(desc))
    put(t, "valid_with_config.json", dump(desc) + "\0" + json.dumps(config, indent=2))
    linears = sorted(k[:-len(".weight")] for k, v in desc.items()
                     if k.endswith(".weight") and v in ("W8A8", "W8A8_DYNAMIC", "W8A16"))
    by_type = {}
    for p in linears:
        by_type.setdefault(desc[p + ".weight"], p)
    w8a8, dyn, w8a16 = by_type.get("W8A8"), by_type.get("W8A8_DYNAMIC"), by_type.get("W8A16")
    d = dict(desc); d[w8a8 + ".weight"] = "W8A16"
    put(t, "w8a8_tagged_w8a16.json", dump(d))
    d = dict(desc); d[dyn + ".weight_scale"] = "W8A8"
    put(t, "mixed_tags.json", dump(d))
    d = dict(desc); del d[w8a16 + ".weight_offset"]
    put(t, "undescribed_tensor.json", dump(d))
    d = dict(desc); d["model.layers.9.mlp.up_proj.weight"] = "W8A16"
    put(t, "missing_tensor.json", dump(d))
    d = dict(desc); d["model_quant_type"] = "W8A16"
    put(t, "wrong_model_quant_type.json", dump(d))
    d = dict(desc); d[dyn + ".weight"] = "W4A16"
    put(t, "unknown_type.json", dump(d))
    d = dict(desc, kv_cache_type="C8", group_size="0")
    put(t, "global_key_types.json", dump(d))
    bf16 = dict(config, dtype="bfloat16")
    put(t, "config_bf16.json", dump(desc) + "\0" + json.dumps(bf16))
    qc = dict(config, quantization_config={"quant_method": "w8a8"})
    put(t, "config_quantization_config.json", dump(desc) + "\0" + json.dumps(qc))


def main():
    # Findings kept as regression inputs (regress_*) are not generated here: keep them.
    for d, _, files in os.walk(CORPUS):
        for f in files:
            if not f.startswith("regress_"):
                os.remove(os.path.join(d, f))
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
