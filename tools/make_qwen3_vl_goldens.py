#!/usr/bin/env python3
"""Reference outputs of the Qwen3-VL-MoE vision tower from HF transformers (tests/data/goldens/qwen3_vl_moe_tiny).

Optional tool: never run by the build or the tests. A tiny random `Qwen3VLMoeForConditionalGeneration` (the config of
shared/spec/multimodal.md C.1: text hidden 64, 3 MoE layers of 4 experts; vision depth 3, hidden 32, 2 heads of 16,
patch 16, temporal patch 2, merge 2x2, a 4x4 position table, deepstack after blocks 0 and 1, gelu_pytorch_tanh) is
saved with `save_pretrained` as bf16 (`config.json`, `model.safetensors`). Its weights are re-drawn from N(0, s^2)
with scales that make every path matter (the default 0.02 init leaves attention uniform and the rotary invisible):
Linear and Conv weights 1/sqrt(fan_in) (q/k rows of qkv 2.5/sqrt(fan_in)), biases 0.1, position table 0.5, norm
weights 1 + 0.2 N(0,1), norm biases 0.1.

The inputs, in `reference.safetensors`:
    pixel_values F32 [64, 1536], grid_thw I64 [3, 3]
made by `Qwen2VLImageProcessor` (slow, PIL resize; patch 16, temporal 2, merge 2, mean = std = 0.5,
min/max pixels 64^2 / 128^2) from two seeded random RGB images, 70x100 -> grid (1, 4, 6) and 100x70 -> (1, 6, 4),
plus seeded N(0, 1) patches for a two-frame "video" entry with grid (2, 2, 4) (attention per temporal slice, rotary
repeated per frame). The outputs of `model.model.visual(pixel_values, grid_thw)` with the saved model loaded back as float32
(eager attention, one thread):
    image_embeds F32 [16, 64], deepstack_0 F32 [16, 64], deepstack_1 F32 [16, 64]
and, to localise a mismatch, `block0_out` F32 [64, 32] (the hidden states after block 0) and `patch_pos` F32
[64, 32] (patch embedding + interpolated position embedding, before block 0).

The image preprocessing goldens, in `preprocess.safetensors`: for each of `images/noise_rgba.png` (60x90 RGBA noise;
convert_to_rgb drops the alpha), `images/smooth.jpg` (100x70 smooth colours, JPEG quality 85, 4:2:0) and, when the
shared folder is there, `../shared/data/images/chelsea.png` (451x300), the slow `Qwen2VLImageProcessor` output with
patch 16, merge 2, temporal 2, mean = std = 0.5, min/max pixels 32^2 / 8192: `<name>.pixel_values` F32 and
`<name>.grid_thw` I64 [3], plus `<name>.resized` U8 [h, w, 3] (convert_to_rgb + PIL BICUBIC resize) to localise a
mismatch.

The text side, in `text_reference.safetensors` (`--text-only` adds these to the committed model without redrawing
it): the folder gets a tiny `tokenizer.json` (the Qwen3 tokenizer's normaliser, pre-tokeniser and decoder over a
247-symbol byte-level vocabulary (newline and printable ASCII first), no merges, Qwen's special tokens at ids 247-253) and a `preprocessor_config.json`
(patch 16, temporal 2, merge 2, mean = std = 0.5, min/max pixels 32^2 / 8192). Two image+text samples are built as
msModelSlim builds them (multimodal.md A.3.3: the chat template with add_generation_prompt, default text "Describe
this image in detail.", one image each: images/smooth.jpg and images/noise_rgba.png), with `<|image_pad|>` expanded
to t*h*w/4 tokens; for each, `s<i>.input_ids` I64 [S], `s<i>.position_ids` I64 [3, S] (HF get_rope_index),
`s<i>.pixel_values`, `s<i>.grid_thw`, `s<i>.layer0_in` F32 [S, 64] (embeddings with the image rows scattered in),
`s<i>.layer<k>_out` F32 [S, 64] (text layer k's output, deepstack added after layers 0 and 1, as HF's text model) and
`s<i>.logits` F32 [S, 256]; and a text-only sample `t0.input_ids` I64 [24] / `t0.logits` F32 [24, 256] (plain
positions: what `lwquant eval` scores on plain text).

    python3 -m venv .venv-goldens && .venv-goldens/bin/pip install torch transformers==4.57.* safetensors pillow
    .venv-goldens/bin/python tools/make_qwen3_vl_goldens.py            # everything (redraws the model)
    .venv-goldens/bin/python tools/make_qwen3_vl_goldens.py --text-only
"""

import json
import os
import sys

import numpy as np
import torch
import transformers
import transformers.image_transforms
from PIL import Image
from safetensors.torch import save_file
from transformers import Qwen2VLImageProcessor, Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "goldens", "qwen3_vl_moe_tiny")


def tiny_config():
    return Qwen3VLMoeConfig(
        text_config=dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                         rope_theta=5e6, max_position_embeddings=1024,
                         rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True},
                         num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1,
                         mlp_only_layers=[], norm_topk_prob=True, tie_word_embeddings=False, hidden_act="silu"),
        vision_config=dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64,
                           num_position_embeddings=16, deepstack_visual_indexes=[0, 1],
                           hidden_act="gelu_pytorch_tanh"),
        image_token_id=250, video_token_id=251, vision_start_token_id=248, vision_end_token_id=249,
        tie_word_embeddings=False)


def redraw(model, gen):
    """Seeded weights with scales that exercise attention, rotary and position interpolation."""
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight") and p.ndim == 1:
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif name.endswith("pos_embed.weight") or "embed_tokens" in name:
                p.copy_(0.5 * noise)
            elif p.ndim >= 2:
                fan_in = p[0].numel() if not name.endswith(("gate_up_proj", "down_proj")) or p.ndim == 2 else p.shape[1]
                w = noise / fan_in ** 0.5
                if name.endswith("attn.qkv.weight"):
                    w[: 2 * p.shape[1]] *= 2.5  # q and k rows: peaky attention
                p.copy_(w)
            else:
                p.copy_(0.1 * noise)


def inputs(gen_np):
    proc = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3,
                                 image_std=[0.5] * 3)
    images = [Image.fromarray(gen_np.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((70, 100), (100, 70))]
    # `size` is honoured at call time only (4.57's constructor keeps its defaults when given it).
    out = proc(images=images, size={"shortest_edge": 64 * 64, "longest_edge": 128 * 128}, return_tensors="pt")
    pv, grid = out["pixel_values"].float(), out["image_grid_thw"]
    assert grid.tolist() == [[1, 4, 6], [1, 6, 4]], grid.tolist()
    video = torch.from_numpy(gen_np.standard_normal((2 * 2 * 4, pv.shape[1])).astype(np.float32))
    return torch.cat([pv, video]), torch.cat([grid, torch.tensor([[2, 2, 4]])])


def preprocess_goldens(gen_np):
    """Processor outputs for small decoded images (PNG with alpha, JPEG, and a real photo when available)."""
    img_dir = os.path.join(OUT, "images")
    os.makedirs(img_dir, exist_ok=True)
    rgba = gen_np.integers(0, 256, (60, 90, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(os.path.join(img_dir, "noise_rgba.png"))
    smooth = Image.fromarray(gen_np.integers(0, 256, (7, 10, 3), dtype=np.uint8)).resize((100, 70), Image.BILINEAR)
    smooth.save(os.path.join(img_dir, "smooth.jpg"), quality=85)
    files = {"noise_rgba": os.path.join(img_dir, "noise_rgba.png"), "smooth": os.path.join(img_dir, "smooth.jpg")}
    chelsea = os.path.join(os.path.dirname(OUT), "..", "..", "..", "..", "shared", "data", "images", "chelsea.png")
    if os.path.exists(chelsea):
        files["chelsea"] = chelsea
    proc = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3,
                                 image_std=[0.5] * 3)
    out = {}
    for name, path in files.items():
        image = Image.open(path)
        r = proc(images=[image], size={"shortest_edge": 32 * 32, "longest_edge": 8192}, return_tensors="pt")
        out[f"{name}.pixel_values"] = r["pixel_values"].float().contiguous()
        out[f"{name}.grid_thw"] = r["image_grid_thw"][0].to(torch.int64).contiguous()
        t, h, w = r["image_grid_thw"][0].tolist()
        rgb = transformers.image_transforms.convert_to_rgb(image)
        out[f"{name}.resized"] = torch.from_numpy(np.array(rgb.resize((w * 16, h * 16), Image.BICUBIC))).contiguous()
    save_file(out, os.path.join(OUT, "preprocess.safetensors"))
    return {k: list(v.shape) for k, v in out.items()}


SPECIALS = {"<|endoftext|>": 247, "<|vision_start|>": 248, "<|vision_end|>": 249, "<|image_pad|>": 250,
            "<|video_pad|>": 251, "<|im_start|>": 252, "<|im_end|>": 253}
QWEN3_TOKENIZER = os.path.join(os.path.dirname(OUT), "..", "..", "..", "..", "shared", "tokenizers", "qwen3",
                               "tokenizer.json")


def write_tiny_tokenizer():
    """The Qwen3 tokenizer's pipeline over a vocabulary small enough for the tiny model (ASCII only)."""
    from tokenizers import Tokenizer
    with open(QWEN3_TOKENIZER) as f:
        t = json.load(f)
    byte_to_char = {}
    n = 0
    for b in list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
            list(range(ord("\xae"), 256)):
        byte_to_char[b] = chr(b)
    for b in range(256):
        if b not in byte_to_char:
            byte_to_char[b] = chr(256 + n)
            n += 1
    # Newline and printable ASCII first, then other bytes up to id 246: the special tokens must follow the model's
    # vocabulary contiguously (the tokenizers library renumbers added tokens past it).
    first = [10] + list(range(32, 127))
    symbols = [byte_to_char[b] for b in first + [b for b in range(256) if b not in first]][:247]
    t["model"]["vocab"] = {c: i for i, c in enumerate(symbols)}
    t["model"]["merges"] = []
    t["added_tokens"] = [dict(id=i, content=c, single_word=False, lstrip=False, rstrip=False, normalized=False,
                              special=True) for c, i in SPECIALS.items()]
    text = json.dumps(t, ensure_ascii=False)
    tok = Tokenizer.from_str(text)
    assert tok.encode("<|image_pad|>").ids == [250]
    assert tok.encode("Describe this image in detail.\n").ids[:3] == [t["model"]["vocab"]["D"], t["model"]["vocab"]["e"],
                                                                      t["model"]["vocab"]["s"]]
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        f.write(text)
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 16, "temporal_patch_size": 2,
                   "merge_size": 2, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
                   "size": {"shortest_edge": 32 * 32, "longest_edge": 8192}}, f, indent=1)
    return tok


def text_goldens():
    """Image+text and text-only forwards of the committed tiny model (multimodal.md A.2, A.3.3, C.1)."""
    from transformers.masking_utils import create_causal_mask
    torch.set_num_threads(1)
    tok = write_tiny_tokenizer()
    model = Qwen3VLMoeForConditionalGeneration.from_pretrained(OUT, dtype=torch.float32).eval()
    model.config._attn_implementation = "eager"
    model.config.text_config._attn_implementation = "eager"
    model.model.visual.config._attn_implementation = "eager"
    proc = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3,
                                 image_std=[0.5] * 3)
    ref = {}
    for i, name in enumerate(("smooth.jpg", "noise_rgba.png")):
        image = Image.open(os.path.join(OUT, "images", name))
        px = proc(images=[image], size={"shortest_edge": 32 * 32, "longest_edge": 8192}, return_tensors="pt")
        pv, grid = px["pixel_values"].float(), px["image_grid_thw"]
        n = int(grid.prod()) // 4
        text = ("<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * n +
                "<|vision_end|>Describe this image in detail.<|im_end|>\n<|im_start|>assistant\n")
        ids = torch.tensor([tok.encode(text).ids])
        attn = torch.ones_like(ids)
        pos, _ = model.model.get_rope_index(input_ids=ids, image_grid_thw=grid, attention_mask=attn)
        with torch.no_grad():
            h = model.model.language_model.embed_tokens(ids)
            embeds, deep = model.model.visual(pv, grid_thw=grid)
            vpos = ids == 250
            h = h.masked_scatter(vpos.unsqueeze(-1).expand_as(h), embeds)
            p = f"s{i}."
            ref.update({p + "input_ids": ids[0], p + "position_ids": pos[:, 0], p + "pixel_values": pv,
                        p + "grid_thw": grid[0].to(torch.int64), p + "layer0_in": h[0].clone()})
            S = ids.shape[1]
            am = create_causal_mask(config=model.config.text_config, input_embeds=h, attention_mask=attn,
                                    cache_position=torch.arange(S), past_key_values=None, position_ids=pos[0])
            pe = model.model.language_model.rotary_emb(h, pos)
            for k, layer in enumerate(model.model.language_model.layers):
                h = layer(h, attention_mask=am, position_ids=pos[0], cache_position=torch.arange(S),
                          position_embeddings=pe, past_key_values=None, use_cache=False)
                if isinstance(h, tuple):
                    h = h[0]
                if k < len(deep):
                    h = h.clone()
                    h[vpos] += deep[k]
                ref[p + f"layer{k}_out"] = h[0].clone()
            logits = model.lm_head(model.model.language_model.norm(h))
            full = model(input_ids=ids, attention_mask=attn, pixel_values=pv, image_grid_thw=grid).logits
            assert torch.allclose(full, logits, atol=1e-5), (full - logits).abs().max()
            ref[p + "logits"] = logits[0]
    ids = torch.from_numpy(np.random.default_rng(11).integers(0, 247, (1, 24))).to(torch.int64)
    with torch.no_grad():
        ref["t0.input_ids"] = ids[0]
        ref["t0.logits"] = model(input_ids=ids).logits[0]
    ref = {k: v.contiguous() for k, v in ref.items()}
    save_file(ref, os.path.join(OUT, "text_reference.safetensors"))
    return {k: list(v.shape) for k, v in ref.items()}


def main():
    if "--text-only" in sys.argv:
        print(json.dumps(text_goldens(), indent=1))
        return
    torch.manual_seed(3)
    torch.set_num_threads(1)
    cfg = tiny_config()
    cfg._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    model = Qwen3VLMoeForConditionalGeneration(cfg).eval()
    model.model.visual.config._attn_implementation = "eager"
    redraw(model, torch.Generator().manual_seed(17))
    model.to(torch.bfloat16)
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(OUT, extra)
        if os.path.exists(path):
            os.remove(path)
    # The reference runs on the saved files, loaded as float32 (lwquant computes bf16 weights in f32). Not the
    # in-memory model: .to(bfloat16) also rounds the non-persistent rotary inv_freq buffers, which a loaded model
    # keeps in float32.
    model = Qwen3VLMoeForConditionalGeneration.from_pretrained(OUT, dtype=torch.float32).eval()
    model.model.visual.config._attn_implementation = "eager"

    pixel_values, grid_thw = inputs(np.random.default_rng(5))
    visual = model.model.visual
    captured = {}
    visual.blocks[0].register_forward_pre_hook(lambda m, args, kw: captured.__setitem__("patch_pos", args[0].clone()),
                                               with_kwargs=True)
    visual.blocks[0].register_forward_hook(lambda m, args, out: captured.__setitem__("block0_out", out.clone()))
    with torch.no_grad():
        embeds, deepstack = visual(pixel_values, grid_thw=grid_thw)
    ref = {"pixel_values": pixel_values.contiguous(), "grid_thw": grid_thw.to(torch.int64).contiguous(),
           "image_embeds": embeds.contiguous(), "patch_pos": captured["patch_pos"].contiguous(),
           "block0_out": captured["block0_out"].contiguous()}
    for i, d in enumerate(deepstack):
        ref[f"deepstack_{i}"] = d.contiguous()
    save_file(ref, os.path.join(OUT, "reference.safetensors"))
    pre = preprocess_goldens(np.random.default_rng(23))
    text = text_goldens()
    summary = {"text": text, "torch": torch.__version__, "transformers": transformers.__version__, "preprocess": pre,
               "shapes": {k: list(v.shape) for k, v in ref.items()},
               "max_abs": {k: float(v.abs().max()) for k, v in ref.items() if v.is_floating_point()}}
    with open(os.path.join(OUT, "generation_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
