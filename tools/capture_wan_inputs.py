#!/usr/bin/env python3
"""Capture the inputs of a Wan2.1 DiT's first block, for lwquant's static (calibrated) Wan quantization.

Optional tool: never run by lwquant's build or tests. lwquant does not run the video pipeline (T5, VAE, sampler);
static schemes calibrate from what block 0 receives in the float pipeline, which this script records and writes
to one safetensors file that `lwquant quant --calib_data FILE.safetensors` reads. For each DiT call i (one per
denoising step and classifier-free-guidance branch; batch elements split):

    "<i>.x"        F32 [L, dim]    block 0's input rows (patch tokens, frame-major)
    "<i>.e0"       F32 [6, dim]    the time modulation (time_projection output, unflattened)
    "<i>.context"  F32 [Lc, dim]   the text context after text_embedding
    "<i>.grid"     I64 [3]         frames, height, width in patches
    "<i>.seq_len"  I64 [1]         self-attention keys (= L: diffusers pads nothing)

lwquant propagates each block's output to the next block with the same e0 / context / grid, as msModelSlim's
Wan adapter does. The block inputs are the same in both checkpoint layouts, so inputs captured with a diffusers
pipeline (e.g. Wan-AI/Wan2.1-T2V-1.3B-Diffusers) calibrate the original-layout release of the same model too.

Two modes:
  * pipeline (default): `diffusers.WanPipeline.from_pretrained(--model)` generates `--prompt` (or the prompt of
    a msModelSlim practice given with --config, multimodal_sd_config.model_config.prompt) for --steps denoising
    steps at --size / --frames; every transformer call is captured. Needs the whole pipeline (T5, VAE) and
    enough memory to run it; a few steps suffice (each step gives two samples with CFG).
  * --random-inputs: only the transformer (`WanTransformer3DModel.from_pretrained(--model)`, a diffusers
    transformer folder) on seeded random latents and text embeddings at --steps timesteps; for tiny test models
    and for trying the static path without the pipeline (such inputs are not representative of real ones).

    pip install torch diffusers transformers safetensors accelerate ftfy pyyaml
    python tools/capture_wan_inputs.py --model Wan2.1-T2V-1.3B-Diffusers --steps 4 --size 832x480 --frames 17 \
        --out wan_calib.safetensors
    lwquant quant --model_path Wan2.1-T2V-1.3B --save_path out --model_type Wan2.1 --quant_type w8a8 \
        --calib_data wan_calib.safetensors
"""

import argparse
import os
import sys

import torch
from safetensors.torch import save_file


def capture_hooks(transformer, samples):
    """Pre-hooks on the transformer (latent grid) and on block 0 (its inputs), one sample per batch element."""
    state = {}
    p_t, p_h, p_w = transformer.config.patch_size

    def on_transformer(module, args, kwargs):
        hs = kwargs.get("hidden_states", args[0] if args else None)
        _, _, f, h, w = hs.shape
        state["grid"] = (f // p_t, h // p_h, w // p_w)

    def on_block0(module, args, kwargs):
        names = ["hidden_states", "encoder_hidden_states", "temb", "rotary_emb"]
        got = dict(zip(names, args))
        got.update({k: v for k, v in kwargs.items() if k in names})
        hs, ctx, temb = got["hidden_states"], got["encoder_hidden_states"], got["temb"]
        if temb.dim() != 3 or temb.shape[1] != 6:
            raise SystemExit(f"block 0's temb has shape {tuple(temb.shape)}; expected [B, 6, dim] (Wan2.1)")
        for b in range(hs.shape[0]):
            i = len(samples)
            samples[f"{i}.x"] = hs[b].detach().float().cpu().contiguous()
            samples[f"{i}.e0"] = temb[b].detach().float().cpu().contiguous()
            samples[f"{i}.context"] = ctx[b].detach().float().cpu().contiguous()
            samples[f"{i}.grid"] = torch.tensor(state["grid"], dtype=torch.int64)
            samples[f"{i}.seq_len"] = torch.tensor([hs.shape[1]], dtype=torch.int64)

    transformer.register_forward_pre_hook(on_transformer, with_kwargs=True)
    transformer.blocks[0].register_forward_pre_hook(on_block0, with_kwargs=True)


def prompt_from_config(path):
    import yaml  # PyYAML, as msModelSlim reads its practices
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    sd = (doc.get("spec") or {}).get("multimodal_sd_config") or {}
    args = sd.get("inference_config") or sd.get("model_config") or {}
    return args.get("prompt"), args.get("frame_num")


def run_pipeline(args, samples):
    from diffusers import WanPipeline
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    pipe = WanPipeline.from_pretrained(args.model, torch_dtype=dtype)
    pipe.to(args.device)
    capture_hooks(pipe.transformer, samples)
    width, height = (int(v) for v in args.size.lower().split("x"))
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    pipe(prompt=args.prompt, negative_prompt=args.negative_prompt, height=height, width=width,
         num_frames=args.frames, num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
         generator=generator, output_type="latent")


def run_random(args, samples):
    from diffusers import WanTransformer3DModel
    model = WanTransformer3DModel.from_pretrained(args.model).eval()
    capture_hooks(model, samples)
    cfg = model.config
    g = torch.Generator().manual_seed(args.seed)
    width, height = (int(v) for v in args.size.lower().split("x"))
    # Latent grid as the VAE would make it: frames (F-1)/4+1, spatial /8.
    lat = torch.randn(1, cfg.in_channels, (args.frames - 1) // 4 + 1, height // 8, width // 8, generator=g)
    text = torch.randn(1, args.text_len, cfg.text_dim, generator=g)
    steps = torch.linspace(999, 0, args.steps + 1)[:-1]
    with torch.no_grad():
        for t in steps:
            model(hidden_states=lat, timestep=t.reshape(1), encoder_hidden_states=text, return_dict=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="diffusers Wan2.1 pipeline folder (or transformer folder with "
                                                   "--random-inputs)")
    ap.add_argument("--out", required=True, help="output .safetensors")
    ap.add_argument("--prompt", help="text prompt (default: --config's model_config.prompt)")
    ap.add_argument("--negative_prompt", default="")
    ap.add_argument("--config", help="a multimodal_sd_modelslim_v1 practice YAML to take prompt/frame_num from")
    ap.add_argument("--steps", type=int, default=4, help="denoising steps to run and capture (default 4)")
    ap.add_argument("--size", default="832x480", help="WIDTHxHEIGHT in pixels (default 832x480)")
    ap.add_argument("--frames", type=int, default=17, help="video frames, 4k+1 (default 17)")
    ap.add_argument("--guidance_scale", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--random-inputs", action="store_true", help="transformer only, seeded random inputs")
    ap.add_argument("--text_len", type=int, default=512, help="--random-inputs: text tokens (default 512)")
    args = ap.parse_args()
    if args.config:
        prompt, frames = prompt_from_config(args.config)
        args.prompt = args.prompt or prompt
        if frames and args.frames == 17:
            args.frames = int(frames)
    if (args.frames - 1) % 4 != 0:
        sys.exit(f"--frames must be 4k+1, got {args.frames}")
    samples = {}
    if args.random_inputs:
        run_random(args, samples)
    else:
        if not args.prompt:
            sys.exit("give --prompt or --config with multimodal_sd_config.model_config.prompt")
        run_pipeline(args, samples)
    if not samples:
        sys.exit("the transformer's block 0 was never called")
    tmp = args.out + ".tmp"
    save_file(samples, tmp, metadata={"format": "lwquant-wan-block-inputs", "model": os.path.basename(args.model)})
    os.replace(tmp, args.out)
    n = len([k for k in samples if k.endswith(".x")])
    print(f"{args.out}: {n} samples, x {list(samples['0.x'].shape)}, context {list(samples['0.context'].shape)}, "
          f"grid {samples['0.grid'].tolist()}")


if __name__ == "__main__":
    main()
