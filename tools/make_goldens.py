#!/usr/bin/env python3
"""Make the reference goldens in tests/data/goldens/ from Hugging Face transformers' own modeling code.

Optional tool: never run by the build or the tests. The C++ forward pass is tested against its committed output.

How to run (needs network access to PyPI once, several GB for torch):

    python3 -m venv .venv-goldens
    .venv-goldens/bin/pip install torch transformers safetensors
    .venv-goldens/bin/python tools/make_goldens.py            # writes tests/data/goldens/<case>/
    .venv-goldens/bin/python tools/make_goldens.py --out DIR  # somewhere else
    .venv-goldens/bin/python tools/make_goldens.py --only qwen3 mistral

Each case folder gets what `save_pretrained` writes (config.json, generation_config.json, *.safetensors and
maybe model.safetensors.index.json) and reference.safetensors with:
    input_ids          I64 [T]         T = 24, seeded random ids in [0, vocab), first id 1
    embeddings         F32 [T, hidden] hidden_states[0] (token embeddings)
    hidden_layer0_out  F32 [T, hidden] hidden_states[1] (output of decoder layer 0, residual stream)
    logits             F32 [T, vocab]  full forward, batch 1, positions 0..T-1, no padding
    greedy_ids         I64 [6 + 8]     model.generate(input_ids[:6], max_new_tokens=8, do_sample=False),
                                       prompt then new tokens; EOS stopping disabled
The reference is always computed by reloading the saved folder in float32 (so bf16 cases are bf16 weights
upcast to f32), with attn_implementation="eager" on CPU. Each folder also gets config_legacy.json: the same
config in the transformers 4.x spelling (rope_scaling + top-level rope_theta + torch_dtype), checked to load
into the same model. generation_summary.json records versions and the self-checks below.

Self-checks run for every case (the script fails if one does not hold):
  * an independent float64 forward written from the formulas (no transformers modules) matches HF's logits,
    embeddings and layer-0 output to < 1e-5 relative (max abs diff / max abs value);
  * switching off the feature under test (rope scaling, sliding window) moves the logits by > 1e-2 relative;
  * llama3 / yarn put at least one frequency in each of their piecewise branches;
  * model.generate equals a plain argmax loop over full forwards, with a top-2 logit gap > 1e-3 at every step;
  * the legacy config gives bit-identical logits.
Output is byte-for-byte reproducible with the same versions (single thread, seeded).
"""

import argparse
import json
import math
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

SEQ_LEN = 24
PROMPT_LEN = 6
NEW_TOKENS = 8

# Shared tiny shapes; each case overrides what it tests.
BASE = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    rms_norm_eps=1e-6,
    max_position_embeddings=64,
    initializer_range=0.1,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
    tie_word_embeddings=False,
)


def rope(rope_type, theta=10000.0, **extra):
    return dict(rope_type=rope_type, rope_theta=theta, **extra)


# name -> (config class, model class, config overrides, options)
CASES = {
    "llama": (LlamaConfig, LlamaForCausalLM,
              dict(rope_parameters=rope("default")), {}),
    # Tied to keep the folder small; the rope is what this case tests.
    "llama_rope_linear": (LlamaConfig, LlamaForCausalLM,
                          dict(rope_parameters=rope("linear", factor=2.0), tie_word_embeddings=True), {}),
    # max_position_embeddings 16 < T = 24 so the dynamic NTK base change is active in the full forward.
    "llama_rope_dynamic": (LlamaConfig, LlamaForCausalLM,
                           dict(rope_parameters=rope("dynamic", factor=2.0), max_position_embeddings=16,
                                rms_norm_eps=1e-5, tie_word_embeddings=True), {}),
    # original_max_position_embeddings 64, not 32: with head_dim 16 and theta 5e5 the wavelengths are 6.3, 32.4,
    # 167, ... so 32 would leave the smoothed middle band [8, 32] empty; 64 puts one frequency in each branch.
    "llama_rope_llama3": (LlamaConfig, LlamaForCausalLM,
                          dict(rope_parameters=rope("llama3", theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                                    high_freq_factor=4.0, original_max_position_embeddings=64),
                               max_position_embeddings=512, attention_bias=True, mlp_bias=False), {}),
    # max_position_embeddings = factor * original so older transformers, which derived the factor from that
    # ratio, would agree.
    "llama_rope_yarn": (LlamaConfig, LlamaForCausalLM,
                        dict(rope_parameters=rope("yarn", factor=4.0, original_max_position_embeddings=32),
                             max_position_embeddings=128, tie_word_embeddings=True), {}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM,
              dict(rope_parameters=rope("default", theta=1000000.0), tie_word_embeddings=True,
                   use_sliding_window=False), {}),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM,
              dict(rope_parameters=rope("default", theta=1000000.0), head_dim=32, tie_word_embeddings=False,
                   use_sliding_window=False), dict(dtype=torch.bfloat16)),
    "mistral": (MistralConfig, MistralForCausalLM,
                dict(rope_parameters=rope("default"), sliding_window=8), dict(max_shard_size="100KB")),
}


def init_std(name):
    """Per-kind weight scales chosen so attention scores, MLP activations and logits are all O(1-10):
    with the default 0.02 init everything collapses to near-uniform attention and the test would not
    notice a wrong rope, mask or norm."""
    if name.endswith("norm.weight"):
        return None  # 1 + small noise, see below
    if "embed_tokens" in name:
        return 0.5
    if "lm_head" in name:
        return 0.4
    if name.endswith(".bias"):
        return 0.2
    if "q_proj" in name or "k_proj" in name:
        return 0.2
    return 0.15


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            std = init_std(name)
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if std is None:
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(std * noise)


def input_ids_for(seed, vocab):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (SEQ_LEN,), generator=g, dtype=torch.int64)
    ids[0] = 1
    return ids


def load_f32(folder):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def forward(model, ids):
    with torch.no_grad():
        out = model(input_ids=ids[None], output_hidden_states=True, use_cache=False)
    return out


def greedy(model, ids):
    prompt = ids[None, :PROMPT_LEN]
    with torch.no_grad():
        seq = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None,
                             pad_token_id=0, attention_mask=torch.ones_like(prompt))[0]
    # Cross-check the cached generation against a plain argmax loop over full forwards.
    # The smallest top-1 minus top-2 gap says how safe an f32 reimplementation is from argmax flips.
    manual, margin = prompt[0].clone(), float("inf")
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            logits = model(input_ids=manual[None], use_cache=False).logits[0, -1]
            top2 = logits.topk(2).values
            margin = min(margin, float(top2[0] - top2[1]))
            manual = torch.cat([manual, logits.argmax().reshape(1)])
    if not torch.equal(seq, manual):
        print(f"  WARNING: generate {seq.tolist()} != manual argmax loop {manual.tolist()}")
    assert seq.shape[0] == PROMPT_LEN + NEW_TOKENS, seq.shape
    assert margin > 1e-3, f"greedy top-2 margin {margin} too small for a stable test; pick another seed"
    return seq, margin


def rel_diff(a, b):
    return float((a - b).abs().max() / b.abs().max())


def sensitivity(name, cfg_cls, model_cls, overrides, folder, ids, logits):
    """Recompute with the feature under test switched off: the logits must move clearly, or the case
    could not catch a C++ bug in that feature."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    changed = None
    if cfg.get("rope_parameters", {}).get("rope_type", "default") != "default":
        cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg["rope_parameters"]["rope_theta"]}
        changed = "rope_parameters -> default"
    elif cfg.get("sliding_window"):
        cfg["sliding_window"] = None
        changed = "sliding_window -> None"
    if changed is None:
        return None
    plain_cfg = cfg_cls(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    plain_cfg._attn_implementation = "eager"
    model = model_cls(plain_cfg).float().eval()
    model.load_state_dict(load_f32(folder).state_dict())
    other = forward(model, ids).logits[0]
    d = rel_diff(logits, other)
    per_tok = (logits - other).abs().amax(dim=1)
    first_diff = int((per_tok > 1e-5 * float(logits.abs().max())).nonzero()[0]) if (per_tok > 0).any() else -1
    print(f"  sensitivity ({changed}): max rel diff {d:.3e}, first differing position {first_diff}")
    assert d > 1e-2, f"{name}: switching off the feature barely changes the logits ({d})"
    return dict(changed=changed, max_rel_diff=d, first_differing_position=first_diff)


# ---------------------------------------------------------------------------------------------------------
# An independent float64 forward pass written from the formulas (no transformers modules), run on every case:
# it checks that the README's description of what HF computes is right, to well under the C++ tolerance.


def inv_freq_for(cfg, seq_len):
    rp = cfg["rope_parameters"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta = rp["rope_theta"]
    kind = rp.get("rope_type", "default")
    exps = torch.arange(0, d, 2, dtype=torch.float64) / d
    if kind == "dynamic":
        # HF: seq_len = max(position_ids) + 1 of this forward, never below max_position_embeddings.
        L = max(seq_len, cfg["max_position_embeddings"])
        f = rp["factor"]
        theta = theta * ((f * L / cfg["max_position_embeddings"]) - (f - 1)) ** (d / (d - 2))
    inv = 1.0 / theta ** exps
    scale = 1.0
    if kind == "linear":
        inv = inv / rp["factor"]
    elif kind == "llama3":
        f, lo, hi, old = (rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"],
                          rp["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (1 - smooth) * inv / f + smooth * inv
        inv = torch.where(wavelen > old / lo, inv / f, torch.where(wavelen < old / hi, inv, mid))
    elif kind == "yarn":
        f, old = rp["factor"], rp["original_max_position_embeddings"]
        beta_fast, beta_slow = rp.get("beta_fast") or 32, rp.get("beta_slow") or 1

        def corr_dim(rot):
            return d * math.log(old / (rot * 2 * math.pi)) / (2 * math.log(theta))

        low, high = max(math.floor(corr_dim(beta_fast)), 0), min(math.ceil(corr_dim(beta_slow)), d - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        extrap = 1 - ramp  # 1: keep the original frequency, 0: interpolate by factor
        inv = inv / f * (1 - extrap) + inv * extrap
        scale = rp.get("attention_factor") or (0.1 * math.log(f) + 1.0 if f > 1 else 1.0)
    return inv, scale


def check_rope_branches(cfg):
    """Each piecewise branch of llama3 / yarn must hold at least one frequency, or the case cannot catch a bug
    in the branch it skips."""
    rp = cfg["rope_parameters"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = 1.0 / rp["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    scaled, _ = inv_freq_for(cfg, 1)
    ratio = scaled / inv  # 1: kept, 1/factor: interpolated, between: blended
    kept = int((ratio > 1 - 1e-9).sum())
    interp = int((ratio < 1 / rp["factor"] + 1e-9).sum())
    blended = ratio.numel() - kept - interp
    print(f"  {rp['rope_type']} frequencies: {kept} kept, {blended} blended, {interp} divided by factor")
    assert kept and blended and interp, "a rope branch is not exercised"


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate(x, cos, sin):  # x [heads, T, d]; HF's rotate_half pairs i with i + d/2
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


def independent_forward(folder, ids):
    from safetensors.torch import load_file
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = {}
    for f in sorted(os.listdir(folder)):
        if f.startswith("model") and f.endswith(".safetensors"):
            w.update({k: v.double() for k, v in load_file(os.path.join(folder, f)).items()})
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps, T = cfg["rms_norm_eps"], ids.shape[0]
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    inv, scale = inv_freq_for(cfg, T)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None]
    cos = torch.cat([ang.cos(), ang.cos()], -1) * scale
    sin = torch.cat([ang.sin(), ang.sin()], -1) * scale
    q_idx, k_idx = torch.arange(T)[:, None], torch.arange(T)[None]
    allowed = k_idx <= q_idx
    if window:
        allowed &= k_idx > q_idx - window

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    x = w["model.embed_tokens.weight"][ids]
    hidden = [x]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj").view(T, H, d).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj").view(T, KV, d).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj").view(T, KV, d).transpose(0, 1)
        if p + "self_attn.q_norm.weight" in w:  # Qwen3: per-head RMSNorm before the rope
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
        s = (q @ k.transpose(1, 2)) / math.sqrt(d)
        s = s.masked_fill(~allowed, float("-inf")).softmax(-1)
        a = (s @ v).transpose(0, 1).reshape(T, H * d)
        x = x + lin(a, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.gate_proj")
        x = x + lin(torch.nn.functional.silu(g) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        hidden.append(x)
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return dict(embeddings=hidden[0], hidden_layer0_out=hidden[1], logits=x @ head.T)


def check_independent(folder, ref):
    mine = independent_forward(folder, ref["input_ids"])
    errs = {k: rel_diff(mine[k], ref[k].double()) for k in mine}
    print("  independent f64 forward, max rel err: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    assert all(e < 1e-5 for e in errs.values()), f"{folder}: HF and the independent forward disagree {errs}"
    return errs


# Older rope configs (2023 checkpoints) spelled the type key "type"; later 4.x ones "rope_type".
OLD_TYPE_KEY = {"llama_rope_linear", "llama_rope_dynamic"}


def legacy_config(name, cfg):
    """The same config as transformers 4.x wrote it and as most hub checkpoints still have it:
    top-level rope_theta, rope_scaling (null or a dict without rope_theta), torch_dtype, and no head_dim where
    it is hidden_size / num_attention_heads (Qwen2 and Mistral 4.x configs had none)."""
    old = {}
    for k, v in cfg.items():
        if k == "rope_parameters":
            rp = dict(v)
            old["rope_theta"] = rp.pop("rope_theta")
            rope_type = rp.pop("rope_type")
            if rope_type == "default":
                old["rope_scaling"] = None
            else:
                rp["type" if name in OLD_TYPE_KEY else "rope_type"] = rope_type
                old["rope_scaling"] = rp
        elif k == "dtype":
            old["torch_dtype"] = v
        elif k in ("layer_types", "transformers_version"):
            continue
        elif k == "head_dim" and cfg["model_type"] != "qwen3" and v * cfg["num_attention_heads"] == cfg["hidden_size"]:
            continue
        else:
            old[k] = v
    return dict(sorted(old.items()))


def check_legacy(folder, legacy, logits, ids):
    """transformers must load the legacy spelling into the same model: same logits bit for bit."""
    tmp = folder + ".legacy-check"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(legacy, f, indent=2)
    try:
        other = forward(load_f32(tmp), ids).logits[0]
    finally:
        shutil.rmtree(tmp)
    assert torch.equal(other, logits), f"{folder}: legacy config gives other logits ({rel_diff(other, logits)})"


def make_case(name, out_root, seed):
    cfg_cls, model_cls, overrides, opts = CASES[name]
    folder = os.path.join(out_root, name)
    shutil.rmtree(folder, ignore_errors=True)
    cfg = cfg_cls(**{**BASE, **overrides})
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(cfg).float().eval()
    randomize(model, seed)
    dtype = opts.get("dtype", torch.float32)
    model = model.to(dtype)
    model.generation_config.eos_token_id = None  # the goldens disable EOS stopping
    model.save_pretrained(folder, max_shard_size=opts.get("max_shard_size", "50GB"))

    model = load_f32(folder)
    ids = input_ids_for(seed + 1000, cfg.vocab_size)
    out = forward(model, ids)
    logits = out.logits[0].contiguous()
    hs = out.hidden_states
    assert len(hs) == cfg.num_hidden_layers + 1
    ref = {
        "input_ids": ids.contiguous(),
        "embeddings": hs[0][0].contiguous(),
        "hidden_layer0_out": hs[1][0].contiguous(),
        "logits": logits,
    }
    ref["greedy_ids"], margin = greedy(model, ids)
    save_file(ref, os.path.join(folder, "reference.safetensors"))
    print(f"{name}: logits std {float(logits.std()):.2f} max|.| {float(logits.abs().max()):.2f}; "
          f"greedy {ref['greedy_ids'].tolist()}")
    info_indep = check_independent(folder, ref)
    if cfg.rope_parameters["rope_type"] in ("llama3", "yarn"):
        check_rope_branches(json.load(open(os.path.join(folder, "config.json"))))
    cfg_json = json.load(open(os.path.join(folder, "config.json")))
    legacy = legacy_config(name, cfg_json)
    check_legacy(folder, legacy, logits, ids)
    with open(os.path.join(folder, "config_legacy.json"), "w") as f:
        json.dump(legacy, f, indent=2)
        f.write("\n")
    info = dict(logits_std=float(logits.std()), logits_absmax=float(logits.abs().max()),
                independent_f64_max_rel_err=info_indep, greedy_min_top2_margin=margin)
    s = sensitivity(name, cfg_cls, model_cls, overrides, folder, ids, logits)
    if s:
        info["sensitivity"] = s
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "data", "goldens"))
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}")
    os.makedirs(args.out, exist_ok=True)
    summary_path = os.path.join(args.out, "generation_summary.json")
    summary = json.load(open(summary_path))["cases"] if os.path.exists(summary_path) else {}
    for i, name in enumerate(CASES):
        if args.only and name not in args.only:
            continue
        summary[name] = make_case(name, args.out, seed=1234 + 17 * i)
    with open(summary_path, "w") as f:
        json.dump(dict(torch=torch.__version__, transformers=transformers.__version__, cases=summary), f,
                  indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
