#!/usr/bin/env python3
"""Record how diffusers names and shapes a tiny Wan2.1 DiT, for lwquant's descriptor test (tests/data/wan/).

Optional tool: never run by the build or the tests. For each of a tiny t2v and i2v model it builds diffusers'
`WanTransformer3DModel`, takes its state_dict, converts the *original* Wan names to diffusers' with diffusers' own
`convert_wan_transformer_to_diffusers` (loaders/single_file_utils.py) by feeding it the original-named keys that
lwquant's descriptor lists, and checks that the result is exactly the diffusers model's parameter set, shape for
shape (no missing, no unexpected). It writes `<case>.json`: the config (both spellings) and the list of
[original name, diffusers name, shape] triples, which src/models/wan_test.cc compares with wan_block_desc(),
wan_outer_tensors() and wan_checkpoint_name().

    .venv-goldens/bin/pip install torch "diffusers<0.36" "huggingface-hub<1.0"
    .venv-goldens/bin/python tools/make_wan_names.py
"""

import json
import os
import sys

import torch
import diffusers
from diffusers import WanTransformer3DModel
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "wan")


def original_names(D, F, Cin, Cout, fd, Tx, layers, image):
    """The original Wan parameter names and shapes (multimodal.md B.1), written independently of lwquant."""
    names = {"patch_embedding.weight": [D, Cin, 1, 2, 2], "patch_embedding.bias": [D],
             "text_embedding.0.weight": [D, Tx], "text_embedding.0.bias": [D],
             "text_embedding.2.weight": [D, D], "text_embedding.2.bias": [D],
             "time_embedding.0.weight": [D, fd], "time_embedding.0.bias": [D],
             "time_embedding.2.weight": [D, D], "time_embedding.2.bias": [D],
             "time_projection.1.weight": [6 * D, D], "time_projection.1.bias": [6 * D],
             "head.head.weight": [4 * Cout, D], "head.head.bias": [4 * Cout], "head.modulation": [1, 2, D]}
    if image:
        names.update({"img_emb.proj.0.weight": [1280], "img_emb.proj.0.bias": [1280],
                      "img_emb.proj.1.weight": [1280, 1280], "img_emb.proj.1.bias": [1280],
                      "img_emb.proj.3.weight": [D, 1280], "img_emb.proj.3.bias": [D],
                      "img_emb.proj.4.weight": [D], "img_emb.proj.4.bias": [D]})
    for n in range(layers):
        p = f"blocks.{n}."
        names[p + "modulation"] = [1, 6, D]
        for a in ("self_attn", "cross_attn"):
            lin = ["q", "k", "v", "o"] + (["k_img", "v_img"] if image and a == "cross_attn" else [])
            for l in lin:
                names[f"{p}{a}.{l}.weight"] = [D, D]
                names[f"{p}{a}.{l}.bias"] = [D]
            names[f"{p}{a}.norm_q.weight"] = [D]
            names[f"{p}{a}.norm_k.weight"] = [D]
            if image and a == "cross_attn":
                names[f"{p}{a}.norm_k_img.weight"] = [D]
        names[p + "norm3.weight"] = [D]
        names[p + "norm3.bias"] = [D]
        names[p + "ffn.0.weight"], names[p + "ffn.0.bias"] = [F, D], [F]
        names[p + "ffn.2.weight"], names[p + "ffn.2.bias"] = [D, F], [D]
    return names


def case(name, image):
    heads, hd, F, Cin, Cout, fd, Tx, layers = 2, 24, 96, 4, 4, 32, 32, 2
    D = heads * hd
    kw = dict(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=hd, in_channels=Cin,
              out_channels=Cout, text_dim=Tx, freq_dim=fd, ffn_dim=F, num_layers=layers, cross_attn_norm=True,
              qk_norm="rms_norm_across_heads", eps=1e-6)
    if image:
        kw.update(image_dim=1280, added_kv_proj_dim=D)
    model = WanTransformer3DModel(**kw)
    want = {k: list(v.shape) for k, v in model.state_dict().items()}
    orig = original_names(D, F, Cin, Cout, fd, Tx, layers, image)
    converted = convert_wan_transformer_to_diffusers({k: torch.zeros(s) for k, s in orig.items()})
    got = {k: list(v.shape) for k, v in converted.items()}
    assert got == want, (sorted(set(got) ^ set(want)), [k for k in got if k in want and got[k] != want[k]])
    # The conversion renames each key on its own: recover the pairs by converting one key at a time.
    pairs = []
    for k, s in orig.items():
        (dk,) = convert_wan_transformer_to_diffusers({k: torch.zeros(s)}).keys()
        pairs.append([k, dk, s])
    cfg_original = dict(_class_name="WanModel", model_type="i2v" if image else "t2v", dim=D, ffn_dim=F,
                        num_heads=heads, num_layers=layers, in_dim=Cin, out_dim=Cout, freq_dim=fd, text_len=16,
                        eps=1e-6)
    cfg_diffusers = dict(model.config)
    cfg_diffusers["_class_name"] = "WanTransformer3DModel"
    cfg_diffusers["patch_size"] = list(cfg_diffusers["patch_size"])
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(dict(diffusers=diffusers.__version__, text_dim=Tx, config_original=cfg_original,
                       config_diffusers=cfg_diffusers, tensors=pairs), f, indent=1)
        f.write("\n")
    print(f"{name}: {len(pairs)} tensors, diffusers {diffusers.__version__}: names and shapes agree")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    case("wan_tiny_t2v", False)
    case("wan_tiny_i2v", True)
