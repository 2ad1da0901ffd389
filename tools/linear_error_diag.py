"""Per-Linear output error of quantized folders on calibration and held-out activations.

Captures the float model's Linear inputs (Σ xᵀx per distinct input, float64) on the calibration
prompts (first N of calib_zh_en.jsonl, one forward each, as lwquant's runner feeds them) and on a
held-out text (ctx-sized windows), then for every quantized Linear of each folder reports
  rel = tr(ΔW H ΔWᵀ) / tr(W H Wᵀ)  (relative squared output error, ΔW = Ŵ − W)
on both sets. Optionally also runs a reference (canonical, Frantar et al.) GPTQ in torch with the
calibration Hessian, as a cross-check of src/quant/gptq.cc.

usage: linear_error_diag.py MODEL CALIB.jsonl TEXT FOLDER... [--n 32] [--ref-gptq BITS] [--layers 0,5]
       [--positions 0 | 0-3] [--cache FILE]   (run with .venv-goldens/bin/python)
"""
import argparse, json, os, glob
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("calib"); ap.add_argument("text")
ap.add_argument("folders", nargs="*")
ap.add_argument("--n", type=int, default=32)
ap.add_argument("--ctx", type=int, default=512)
ap.add_argument("--max-tokens", type=int, default=4096)
ap.add_argument("--ref-gptq", type=int, default=0, help="bits of a torch reference GPTQ (0: none)")
ap.add_argument("--layers", default="")
ap.add_argument("--cache", default="")
ap.add_argument("--positions", default="", help="only rows at these sequence positions, e.g. 0 or 0-3")
a = ap.parse_args()

torch.set_grad_enabled(False)
pos = None
if a.positions:
    lo, _, hi = a.positions.partition("-"); pos = list(range(int(lo), int(hi or lo) + 1))
tok = AutoTokenizer.from_pretrained(a.model)
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
lin = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "layers." in n}
layers = [int(x) for x in a.layers.split(",")] if a.layers else None
if layers is not None:
    lin = {n: m for n, m in lin.items() if int(n.split("layers.")[1].split(".")[0]) in layers}

def capture(batches):
    H = {n: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for n, m in lin.items()}
    cnt = {n: 0 for n in lin}
    hooks = []
    for n, m in lin.items():
        def hook(mod, inp, out, n=n):
            x = inp[0].reshape(-1, inp[0].shape[-1]).double()
            if pos is not None: x = x[[p for p in pos if p < x.shape[0]]]
            H[n] += x.T @ x; cnt[n] += x.shape[0]
        hooks.append(m.register_forward_hook(hook))
    for ids in batches:
        model(torch.tensor([ids]))
    for h in hooks: h.remove()
    return H, cnt

if a.cache and os.path.exists(a.cache):
    Hc, cc, Ht, ct = torch.load(a.cache)
else:
    prompts = [json.loads(l)["inputs_pretokenized"] for l in open(a.calib)][: a.n]
    calib = [tok(p)["input_ids"] for p in prompts]
    text = tok(open(a.text).read())["input_ids"][: a.max_tokens]
    wins = [text[i:i + a.ctx] for i in range(0, len(text), a.ctx)]
    Hc, cc = capture(calib)
    Ht, ct = capture(wins)
    if a.cache: torch.save((Hc, cc, Ht, ct), a.cache)
first = next(iter(cc))
print(f"calibration rows {cc[first]}, held-out rows {ct[first]}")

def rel(W, Wq, H):
    D = (Wq - W).double()
    return (torch.einsum("oi,ij,oj->", D, H, D) / torch.einsum("oi,ij,oj->", W.double(), H, W.double())).item()

def load_folder(f):
    desc = json.load(open(os.path.join(f, "quant_model_description.json")))
    t = {}
    for p in glob.glob(os.path.join(f, "*.safetensors")):
        with safe_open(p, "pt") as s:
            for k in s.keys(): t[k] = s.get_tensor(k)
    out = {}
    for n in lin:
        k = "model." + n if not n.startswith("model.") else n
        ty = desc.get(k + ".weight")
        if ty is None or ty == "FLOAT": continue
        q = t[k + ".weight"].to(torch.int32)
        if ty == "W4A8_DYNAMIC" and q.shape[0] * 2 == lin[n].out_features:  # packed along out
            lo = ((q & 0xF) ^ 8) - 8; hi = q >> 4
            q = torch.stack([lo, hi], 1).reshape(-1, q.shape[1])
        s = t[k + ".weight_scale"].float(); o = t.get(k + ".weight_offset")
        o = torch.zeros_like(s) if o is None else o.float()
        if s.shape[1] > 1 and s.shape[1] < q.shape[1]:  # per group
            g = q.shape[1] // s.shape[1]
            s = s.repeat_interleave(g, 1); o = o.repeat_interleave(g, 1)
        out[n] = ((q.float() - o) * s, ty)
    return out

def ref_gptq(W, H, bits, percdamp=0.01, bs=128):
    """Canonical GPTQ (per-channel symmetric, params from the original W, scale = max|w|/qmax)."""
    W = W.clone().double(); H = H.clone() / H.diagonal().mean()  # scale-free
    n = W.shape[1]
    dead = H.diagonal() == 0
    H[dead, dead] = 1; W[:, dead] = 0
    H += percdamp * H.diagonal().mean() * torch.eye(n, dtype=H.dtype)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    qmax = 2 ** (bits - 1) - 1
    s = (W.abs().amax(1, keepdim=True) / qmax).clamp(min=1e-8)
    Q = torch.zeros_like(W); clipped = 0
    for i1 in range(0, n, bs):
        i2 = min(i1 + bs, n); W1 = W[:, i1:i2].clone(); E1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            w = W1[:, i]; d = Hinv[i1 + i, i1 + i]
            r = torch.round(w / s[:, 0]); clipped += ((r < -qmax - 1) | (r > qmax)).sum().item()
            q = r.clamp(-qmax - 1, qmax) * s[:, 0]
            Q[:, i1 + i] = q
            e = (w - q) / d
            W1[:, i:] -= e.unsqueeze(1) * Hinv[i1 + i, i1 + i:i2].unsqueeze(0)
            E1[:, i] = e
        W[:, i2:] -= E1 @ Hinv[i1:i2, i2:]
    return Q.float(), clipped

folders = {os.path.basename(f.rstrip("/")): load_folder(f) for f in a.folders}
names = list(lin)
hdr = "linear".ljust(34) + "".join(f"{fn[:18]:>20}{'':>10}" for fn in folders)
if a.ref_gptq: hdr += f"{'ref_gptq':>20}{'':>10}{'rtn':>20}"
print(hdr)
print(" " * 34 + "".join(f"{'calib':>20}{'held':>10}" for _ in range(len(folders) + (2 if a.ref_gptq else 0))))
tot = {}
for n in names:
    W = lin[n].weight.float()
    row = n.ljust(34)
    for fn, fq in folders.items():
        if n not in fq: row += f"{'-':>20}{'-':>10}"; continue
        Wq, ty = fq[n]
        rc, rt = rel(W, Wq, Hc[n]), rel(W, Wq, Ht[n])
        tot.setdefault(fn, []).append((rc, rt))
        clip = ""
        row += f"{rc:>20.3e}{rt:>10.3e}"
    if a.ref_gptq:
        Q, clipped = ref_gptq(W, Hc[n], a.ref_gptq)
        qmax = 2 ** (a.ref_gptq - 1) - 1
        s = W.abs().amax(1, keepdim=True) / qmax
        R = (W / s).round().clamp(-qmax - 1, qmax) * s
        row += f"{rel(W, Q, Hc[n]):>20.3e}{rel(W, Q, Ht[n]):>10.3e}{rel(W, R, Hc[n]):>20.3e}{rel(W, R, Ht[n]):>10.3e} clip={clipped}"
    print(row, flush=True)
for fn, v in tot.items():
    import math
    gc = math.exp(sum(math.log(x[0]) for x in v) / len(v)); gt = math.exp(sum(math.log(x[1]) for x in v) / len(v))
    print(f"{fn}: geometric mean rel err calib {gc:.3e} held-out {gt:.3e} over {len(v)} Linears")
