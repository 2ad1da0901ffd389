#!/usr/bin/env python3
"""Reference outputs of Wan2.1 DiT blocks from the ORIGINAL Wan code (github.com/Wan-Video/Wan2.1,
`wan/modules/model.py`), for lwquant's block forward (tests/data/goldens/wan_tiny_original).

Optional tool: never run by the build or the tests. A tiny random t2v `WanModel` (2 blocks, dim 48, 2 heads of 24,
ffn 96, text_dim 32, text_len 5) is saved in the original layout (`config.json` from its ConfigMixin,
`diffusion_pytorch_model.safetensors` with its own parameter names), then run on one latent [4, 3, 4, 6]
(3·2·3 = 18 patch tokens) padded to seq_len 20 — so the two padding rows and the key mask `seq_lens` are exercised —
at timestep 937 with a 5-token text context. Hooks record what block 0 receives and what each block returns:
    block0_in [20, 48], temb [6, 48] (e0), context [5, 48], grid I64 [3], seq_len I64 [1], block{0,1}_out [20, 48]
all float32. The repository's `flash_attention` needs CUDA and computes in bfloat16; it is replaced by float32
scaled-dot-product attention with the same key mask (`k_lens`), which is the function it approximates.

    git clone https://github.com/Wan-Video/Wan2.1 ../wan21     # or any checkout holding wan/modules/model.py
    .venv-goldens/bin/pip install torch "diffusers<0.36" safetensors easydict
    .venv-goldens/bin/python tools/make_wan_original_goldens.py --wan-repo ../wan21
"""

import argparse
import importlib.util
import json
import os
import sys
import types

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "goldens", "wan_tiny_original")


def load_wan_model_module(repo):
    """wan/modules/model.py and its attention module, without the package's heavy __init__ (T5, VAE, pipelines)."""
    pkg = types.ModuleType("wan")
    pkg.__path__ = [os.path.join(repo, "wan")]
    sys.modules["wan"] = pkg
    mods = types.ModuleType("wan.modules")
    mods.__path__ = [os.path.join(repo, "wan", "modules")]
    sys.modules["wan.modules"] = mods
    for name in ("attention", "model"):
        spec = importlib.util.spec_from_file_location(f"wan.modules.{name}",
                                                      os.path.join(repo, "wan", "modules", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"wan.modules.{name}"] = module
        spec.loader.exec_module(module)
    return sys.modules["wan.modules.model"]


def attention_f32(q, k, v, q_lens=None, k_lens=None, dropout_p=0., softmax_scale=None, q_scale=None, causal=False,
                  window_size=(-1, -1), deterministic=False, dtype=None, version=None):
    """[B, L, N, C] attention in float32, keys beyond k_lens masked (what flash_attention computes)."""
    qt, kt, vt = (t.transpose(1, 2).float() for t in (q, k, v))
    mask = None
    if k_lens is not None:
        mask = (torch.arange(k.shape[1])[None, :] < k_lens[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=softmax_scale)
    return out.transpose(1, 2).type_as(q)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wan-repo", required=True, help="a Wan2.1 checkout (wan/modules/model.py)")
    args = ap.parse_args()
    wm = load_wan_model_module(args.wan_repo)
    wm.flash_attention = attention_f32
    torch.manual_seed(7)
    torch.set_num_threads(1)
    model = wm.WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=5, in_dim=4, dim=48, ffn_dim=96,
                        freq_dim=32, text_dim=32, out_dim=4, num_heads=2, num_layers=2).eval()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g)
            is_norm = "norm" in name and name.endswith("weight") and p.ndim == 1
            p.copy_(1.0 + 0.1 * noise if is_norm else 0.1 * noise)
    os.makedirs(OUT, exist_ok=True)
    model.save_config(OUT)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(OUT, "diffusion_pytorch_model.safetensors"))
    captured = {}

    def pre_hook(module, args, kwargs):
        captured["block0_in"] = args[0][0].detach().clone()
        captured["temb"] = kwargs["e"][0].detach().clone()
        captured["context"] = kwargs["context"][0].detach().clone()
        captured["grid"] = kwargs["grid_sizes"][0].clone()
        captured["seq_len"] = kwargs["seq_lens"].clone()

    def post_hook(i):
        def hook(module, args, kwargs, out):
            captured[f"block{i}_out"] = out[0].detach().clone()
        return hook

    model.blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True)
    for i, blk in enumerate(model.blocks):
        blk.register_forward_hook(post_hook(i), with_kwargs=True)
    x = torch.randn(4, 3, 4, 6, generator=g)
    context = torch.randn(5, 32, generator=g)
    with torch.no_grad():
        model([x], t=torch.tensor([937.0]), context=[context], seq_len=20)
    ref = {k: (v.float() if v.is_floating_point() else v.to(torch.int64)).contiguous() for k, v in captured.items()}
    save_file(ref, os.path.join(OUT, "reference.safetensors"))
    with open(os.path.join(OUT, "generation_summary.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, source="Wan-Video/Wan2.1 wan/modules/model.py",
                       shapes={k: list(v.shape) for k, v in ref.items()}), f, indent=1)
        f.write("\n")
    print({k: list(v.shape) for k, v in ref.items()})


if __name__ == "__main__":
    main()
