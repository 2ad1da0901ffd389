#!/usr/bin/env python3
"""Make the mixture-of-experts reference goldens in tests/data/goldens/<case>/ from Hugging Face transformers.

Optional tool: never run by the build or the tests. Same output contract as tools/make_goldens.py
(config.json, weights, reference.safetensors with input_ids, embeddings, hidden_layer0_out, logits, greedy_ids;
no config_legacy.json), for tiny random Qwen3-MoE and Mixtral models:

    (vocab 512, so the tests can calibrate them with the stories260K tokenizer)
    qwen3_moe        Qwen3MoeForCausalLM, per-expert Linears (mlp.experts.<e>.{gate,up,down}_proj.weight, as released
                     checkpoints store them), norm_topk_prob false, layer 1 dense (mlp_only_layers), 4 layers
                     with decoder_sparse_step 1
    qwen3_moe_fused  the same weights with the experts fused output-major as transformers 5 saves them:
                     mlp.experts.gate_up_proj [E, 2I, H] (gate rows, then up rows), mlp.experts.down_proj [E, H, I];
                     norm_topk_prob true (another routing rule, other logits)
    mixtral          MixtralForCausalLM, block_sparse_moe.experts.<e>.w1/w2/w3, top-2 renormalised, bf16

The weights are written by this script from the model's parameters (not save_pretrained), so the on-disk layout
is the one named above whatever the transformers version. The logits come from HF's own modeling code in float32
(eager attention), and an independent float64 forward written from the formulas (softmax router, top-k, optional
renormalisation, per-expert SwiGLU) must agree to < 1e-5 relative. A self-check also verifies that the routing
matters: recomputing with every token sent to expert 0 moves the logits by > 1e-2.

    python3 -m venv .venv-goldens && .venv-goldens/bin/pip install torch "transformers==4.57.*" safetensors
    .venv-goldens/bin/python tools/make_moe_goldens.py [--out DIR] [--only qwen3_moe mixtral]
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
from transformers import MixtralConfig, MixtralForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import forward, rms_norm, rotate  # noqa: E402  (the dense goldens' helpers)

class NearTie(Exception):
    """Two experts' routing probabilities at the top-k boundary are so close that f32 and f64 may pick
    differently: the case is remade with the next seed."""


SEQ_LEN = 24
PROMPT_LEN = 6
NEW_TOKENS = 8

BASE = dict(vocab_size=512, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=64, initializer_range=0.1, bos_token_id=1,
            eos_token_id=2, pad_token_id=None, tie_word_embeddings=False, rope_theta=10000.0)

CASES = {
    "qwen3_moe": (Qwen3MoeConfig, Qwen3MoeForCausalLM,
                  dict(num_hidden_layers=4, intermediate_size=96, moe_intermediate_size=32, num_experts=8,
                       num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1],
                       use_sliding_window=False, rope_theta=1000000.0),
                  dict(layout="per_expert")),
    "qwen3_moe_fused": (Qwen3MoeConfig, Qwen3MoeForCausalLM,
                        dict(num_hidden_layers=3, intermediate_size=96, moe_intermediate_size=48, num_experts=6,
                             num_experts_per_tok=3, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                             use_sliding_window=False, tie_word_embeddings=True),
                        dict(layout="fused_out_major")),
    "mixtral": (MixtralConfig, MixtralForCausalLM,
                dict(intermediate_size=48, num_local_experts=4, num_experts_per_tok=2, sliding_window=None),
                dict(layout="per_expert", dtype=torch.bfloat16)),
}


def init_std(name):
    if name.endswith("norm.weight"):
        return None
    if "embed_tokens" in name:
        return 0.5
    if "lm_head" in name:
        return 0.4
    if name.endswith("gate.weight"):  # routers: O(1) logits so the top-k changes from token to token
        return 0.4
    if "q_proj" in name or "k_proj" in name:
        return 0.2
    return 0.15


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            std = init_std(name)
            if std is None:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def state_in_layout(model, layout, num_experts):
    """Parameters as the on-disk layout stores them."""
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    if layout == "per_expert":
        return sd
    out = {}
    layers = {}
    for k, v in sd.items():
        if ".mlp.experts." not in k:
            out[k] = v
            continue
        prefix, rest = k.split(".mlp.experts.")
        e, which = rest.split(".")[0], rest.split(".")[1]
        layers.setdefault(prefix, {})[(int(e), which)] = v
    for prefix, w in layers.items():
        gate_up = torch.stack([torch.cat([w[(e, "gate_proj")], w[(e, "up_proj")]], 0) for e in range(num_experts)])
        down = torch.stack([w[(e, "down_proj")] for e in range(num_experts)])
        out[prefix + ".mlp.experts.gate_up_proj"] = gate_up.contiguous()  # [E, 2I, H]
        out[prefix + ".mlp.experts.down_proj"] = down.contiguous()        # [E, H, I]
    return out


def input_ids_for(seed, vocab):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (SEQ_LEN,), generator=g)
    ids[0] = 1
    return ids


def greedy(model, ids):
    prompt = ids[:PROMPT_LEN]
    with torch.no_grad():
        out = model.generate(prompt[None], max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None,
                             pad_token_id=0)[0]
    seq, margin = prompt.clone(), float("inf")
    for _ in range(NEW_TOKENS):
        logits = forward(model, seq).logits[0, -1]
        top = logits.topk(2).values
        margin = min(margin, float(top[0] - top[1]))
        seq = torch.cat([seq, logits.argmax()[None]])
    assert torch.equal(seq, out), f"generate {out.tolist()} != argmax loop {seq.tolist()}"
    if margin <= 1e-3:
        raise NearTie(f"greedy top-2 gap {margin:.1e} too small to be a stable reference")
    return out.contiguous(), margin


def rel_diff(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def expert_weights(w, p, family, e, num_experts):
    """(gate [I,H], up [I,H], down [H,I]) of expert e in either layout."""
    if family == "mixtral":
        q = f"{p}block_sparse_moe.experts.{e}."
        return w[q + "w1.weight"], w[q + "w3.weight"], w[q + "w2.weight"]
    if p + "mlp.experts.gate_up_proj" in w:
        gu, down = w[p + "mlp.experts.gate_up_proj"][e], w[p + "mlp.experts.down_proj"][e]
        i = gu.shape[0] // 2
        return gu[:i], gu[i:], down
    q = f"{p}mlp.experts.{e}."
    return w[q + "gate_proj.weight"], w[q + "up_proj.weight"], w[q + "down_proj.weight"]


def independent_forward(folder, ids, route_all_to_zero=False, gaps=None):
    from safetensors.torch import load_file
    cfg = json.load(open(os.path.join(folder, "config.json")))
    family = cfg["model_type"]
    w = {k: v.double() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, T = cfg["rms_norm_eps"], ids.shape[0]
    E = cfg.get("num_experts") or cfg.get("num_local_experts")
    k_top = cfg["num_experts_per_tok"]
    renorm = cfg.get("norm_topk_prob", True) if family == "qwen3_moe" else True
    inv = 1.0 / cfg["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    allowed = torch.arange(T)[None] <= torch.arange(T)[:, None]
    x = w["model.embed_tokens.weight"][ids]
    hidden = [x]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, H, d).transpose(0, 1)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, KV, d).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, KV, d).transpose(0, 1)
        if p + "self_attn.q_norm.weight" in w:
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
        s = ((q @ k.transpose(1, 2)) / math.sqrt(d)).masked_fill(~allowed, float("-inf")).softmax(-1)
        x = x + (s @ v).transpose(0, 1).reshape(T, H * d) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        router = p + ("block_sparse_moe.gate.weight" if family == "mixtral" else "mlp.gate.weight")
        if router not in w:  # a dense layer (mlp_only_layers)
            g = h @ w[p + "mlp.gate_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
            hidden.append(x)
            continue
        probs = (h @ w[router].T).softmax(-1)
        if gaps is not None and k_top < E:
            srt = probs.sort(-1, descending=True).values
            gaps.append(float((srt[:, k_top - 1] - srt[:, k_top]).min()))
        top_w, top_i = probs.topk(k_top, dim=-1)
        if route_all_to_zero:
            top_i = torch.zeros_like(top_i)
        if renorm:
            top_w = top_w / top_w.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in range(E):
            gate, up, down = expert_weights(w, p, family, e, E)
            y = (torch.nn.functional.silu(h @ gate.T) * (h @ up.T)) @ down.T
            r = (top_w * (top_i == e)).sum(-1, keepdim=True)
            out = out + r * y
        x = x + out
        hidden.append(x)
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return dict(embeddings=hidden[0], hidden_layer0_out=hidden[1], logits=x @ head.T)


def make_case(name, out_root, seed):
    cfg_cls, model_cls, overrides, opts = CASES[name]
    folder = os.path.join(out_root, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    cfg = cfg_cls(**{**BASE, **overrides})
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(cfg).float().eval()
    randomize(model, seed)
    dtype = opts.get("dtype", torch.float32)
    # The reference computes in f32 with the stored (rounded) weights. Parameters only: model.to(bf16) would
    # also round the rotary inv_freq buffer.
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(prm.to(dtype).float())
    E = getattr(cfg, "num_experts", None) or getattr(cfg, "num_local_experts")
    state = {k: v.to(dtype) for k, v in state_in_layout(model, opts["layout"], E).items()}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    cfg_json = cfg.to_dict()
    cfg_json["torch_dtype"] = "bfloat16" if dtype == torch.bfloat16 else "float32"
    cfg_json["architectures"] = [model_cls.__name__]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg_json, f, indent=2, sort_keys=True)
        f.write("\n")

    ids = input_ids_for(seed + 1000, cfg.vocab_size)
    out = forward(model, ids)
    logits = out.logits[0].contiguous()
    hs = out.hidden_states
    ref = dict(input_ids=ids.contiguous(), embeddings=hs[0][0].contiguous(), hidden_layer0_out=hs[1][0].contiguous(),
               logits=logits)
    ref["greedy_ids"], margin = greedy(model, ids)
    save_file(ref, os.path.join(folder, "reference.safetensors"))
    gaps = []
    mine = independent_forward(folder, ids, gaps=gaps)
    if min(gaps) < 1e-5:  # f32 routing probabilities are good to ~1e-7
        raise NearTie(f"{name}: top-k boundary gap {min(gaps):.1e}")
    errs = {k: rel_diff(mine[k], ref[k]) for k in mine}
    print(f"{name}: independent f64 forward, max rel err " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    assert all(e < 1e-5 for e in errs.values()), f"{name}: HF and the independent forward disagree {errs}"
    moved = rel_diff(independent_forward(folder, ids, route_all_to_zero=True)["logits"], ref["logits"])
    print(f"  routing sensitivity: every token to expert 0 moves the logits by {moved:.2e}")
    assert moved > 1e-2
    return dict(seed=seed, min_top_k_gap=min(gaps), logits_std=float(logits.std()), logits_absmax=float(logits.abs().max()),
                independent_f64_max_rel_err=errs, greedy_min_top2_margin=margin, routing_sensitivity=moved,
                layout=opts["layout"], dtype=cfg_json["torch_dtype"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "data", "goldens"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}")
    summary_path = os.path.join(args.out, "moe_generation_summary.json")
    summary = json.load(open(summary_path))["cases"] if os.path.exists(summary_path) else {}
    for i, name in enumerate(CASES):
        if args.only and name not in args.only:
            continue
        for attempt in range(50):
            try:
                summary[name] = make_case(name, args.out, seed=4321 + 17 * i + 1000 * attempt)
                break
            except NearTie as e:
                print(f"  {e}; next seed")
    with open(summary_path, "w") as f:
        json.dump(dict(torch=torch.__version__, transformers=transformers.__version__, cases=summary), f,
                  indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
