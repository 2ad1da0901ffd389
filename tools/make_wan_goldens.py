#!/usr/bin/env python3
"""Reference outputs of Wan2.1 DiT blocks from diffusers, for lwquant's block forward (tests/data/goldens/wan_tiny).

Optional tool: never run by the build or the tests. A tiny random `WanTransformer3DModel` (t2v, 2 blocks, dim 48,
2 heads of 24, ffn 96) is saved in the diffusers layout (`config.json`, `diffusion_pytorch_model.safetensors`),
then run on one latent [1, 4, 3, 4, 6] (patchified to 3·2·3 = 18 tokens), timestep 937 and a 5-token text
context; forward hooks capture what block 0 receives (hidden states, the 6·dim time modulation `temb`, the
projected text context) and what each block returns. `reference.safetensors` holds
    block0_in [18, 48], temb [6, 48], context [text_len, 48], grid I64 [3] (frames, height, width in patches),
    block0_out [18, 48], block1_out [18, 48]
all float32. Weights are N(0, 0.1²) (norm weights 1 + N(0, 0.1²)) so every path matters; f32 on CPU.

    .venv-goldens/bin/pip install torch "diffusers<0.36" "huggingface-hub<1.0" safetensors
    .venv-goldens/bin/python tools/make_wan_goldens.py
"""

import json
import os

import torch
import diffusers
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

GOLDENS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "goldens")


def main():
    build(os.path.join(GOLDENS, "wan_tiny"), i2v=False)
    build(os.path.join(GOLDENS, "wan_tiny_i2v"), i2v=True)


def build(OUT, i2v):
    """t2v: the whole model saved. i2v (image cross-attention: add_k/add_v projections, norm_added_k, a 257-token
    CLIP image context before the 512 text tokens diffusers hard-codes): only the blocks' tensors are saved
    (blocks.safetensors; the 1280-wide image embedder would make the golden large) with config.json."""
    torch.manual_seed(7)
    torch.set_num_threads(1)
    extra = dict(image_dim=1280, added_kv_proj_dim=48) if i2v else {}
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=24, in_channels=4,
                                  out_channels=4, text_dim=32, freq_dim=32, ffn_dim=96, num_layers=2,
                                  cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, **extra).eval()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g)
            is_norm = ("norm" in name and name.endswith("weight") and p.ndim == 1)
            p.copy_(1.0 + 0.1 * noise if is_norm else 0.1 * noise)
    os.makedirs(OUT, exist_ok=True)
    if i2v:
        model.save_config(OUT)
        save_file({k: v.contiguous() for k, v in model.state_dict().items() if k.startswith("blocks.")},
                  os.path.join(OUT, "blocks.safetensors"))
    else:
        model.save_pretrained(OUT, safe_serialization=True)
    captured = {}

    def pre_hook(i):
        def hook(module, args, kwargs):
            if i == 0:
                hs, ehs, temb, rot = (list(args) + [None] * 4)[:4]
                hs = kwargs.get("hidden_states", hs)
                ehs = kwargs.get("encoder_hidden_states", ehs)
                temb = kwargs.get("temb", temb)
                captured["block0_in"] = hs[0].detach().clone()
                captured["context"] = ehs[0].detach().clone()
                captured["temb"] = temb[0].detach().clone()
        return hook

    def post_hook(i):
        def hook(module, args, kwargs, out):
            captured[f"block{i}_out"] = out[0].detach().clone()
        return hook

    for i, blk in enumerate(model.blocks):
        blk.register_forward_pre_hook(pre_hook(i), with_kwargs=True)
        blk.register_forward_hook(post_hook(i), with_kwargs=True)
    x = torch.randn(1, 4, 3, 4, 6, generator=g)
    context = torch.randn(1, 512 if i2v else 5, 32, generator=g)
    image = dict(encoder_hidden_states_image=torch.randn(1, 257, 1280, generator=g)) if i2v else {}
    with torch.no_grad():
        model(hidden_states=x, timestep=torch.tensor([937.0]), encoder_hidden_states=context, return_dict=False,
              **image)
    ref = {k: v.float().contiguous() for k, v in captured.items()}
    ref["grid"] = torch.tensor([3, 2, 3], dtype=torch.int64)
    save_file(ref, os.path.join(OUT, "reference.safetensors"))
    with open(os.path.join(OUT, "generation_summary.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, diffusers=diffusers.__version__,
                       shapes={k: list(v.shape) for k, v in ref.items()},
                       block0_change=float((ref["block0_out"] - ref["block0_in"]).abs().max())), f, indent=1)
        f.write("\n")
    print({k: list(v.shape) for k, v in ref.items()})


if __name__ == "__main__":
    main()
