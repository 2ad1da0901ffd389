#!/usr/bin/env bash
# Side by side: lwquant against msModelSlim (CPU, layer-wise runner), llm-compressor and llama.cpp's
# llama-quantize on the same checkpoint, the same configs and the same calibration samples (issue 13 item 8).
# Optional and never run by CI: it needs PyPI and a fetched msModelSlim source tree. See usage below and
# docs/benchmarks.md, "Side by side with msModelSlim, llm-compressor and llama.cpp".
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/compare_peers.sh WORK MODEL

  WORK   work folder OUTSIDE the repository: venvs, sources, the llama.cpp build, converted GGUFs, outputs
         and logs go there and are reused by later runs (delete it to start over)
  MODEL  a Hugging Face Llama-family folder (config.json, *.safetensors, tokenizer.json)

Runs, for the same model, config and calibration samples, under /usr/bin/time -v:
  calibrated W8A8 (configs/w8a8.yaml: iter_smooth alpha 0.9 + static per-tensor asymmetric int8 activations,
  per-channel symmetric int8 minmax weights):
      lwquant (as is; --no_report; --no_report --compute_dtype bf16), msModelSlim (--config_path, same YAML), llm-compressor
      (SmoothQuantModifier 0.9 + QuantizationModifier, same scheme, sequential pipeline)
  data-free W8A16 and W8A8_DYNAMIC (configs/w8a16.yaml, configs/w8a8_dynamic.yaml):
      lwquant, msModelSlim, llm-compressor (datafree pipeline); llama-quantize Q8_0 from a BF16 GGUF
and prints wall time, CPU time (user + sys), peak RSS and lwquant's ratio to each peer (lwquant / peer).

Environment (defaults in brackets):
  LWQUANT            lwquant binary [build/lwquant]
  MSMODELSLIM_SRC    msModelSlim source tree, e.g. `git -C <fetched git dir> archive HEAD | tar -x -C DIR`
                     [WORK/msmodelslim]; msModelSlim is skipped when it is absent
  CALIB_SAMPLES      the first N prompts of calib/calib_zh_en.jsonl, for every tool [8]
  THREADS            threads for every tool (OMP_NUM_THREADS, torch threads, llama-quantize nthreads) [2]
  OMP_WAIT_POLICY    for every tool [PASSIVE, which lwquant uses anyway]
  ROUNDS             rounds of each data-free run; the table gives each round [1]
  TOOLS              subset of "lwquant msmodelslim llmcompressor llamacpp" [all four]
  SCHEMES            subset of "w8a8 w8a16 w8a8_dynamic" [all three]
  COLD               1: drop the page cache (sync; echo 3 > /proc/sys/vm/drop_caches) before every run instead
                     of reading the inputs once with cat (the default, "warm") [0]
  SETUP_ONLY         1: set up venvs, sources, configs and the GGUF, then stop [0]

Setup (first run only; needs PyPI): WORK/venv-msms (torch, transformers 4.57.6, sentencepiece 0.2.0, msModelSlim
`pip install` from MSMODELSLIM_SRC, with the one-line CPU patch of patch_msms below), WORK/venv-llmc (llmcompressor), WORK/llama.cpp (the tree bundled in PyPI's
llama-cpp-python sdist; llama-quantize built with cmake, GGML_NATIVE=ON, Release). The model is seen by every tool
through WORK/model/NAME: hard links to its files, with tokenizer_config.json set to load tokenizer.json
(PreTrainedTokenizerFast) when no tokenizer.model is there and with a pad token (msModelSlim tokenizes with
padding=True), so every tool tokenizes the calibration text the same way.
EOF
}

case "${1:-}" in -h|--help) usage; exit 0;; esac
[[ $# -eq 2 ]] || { usage >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(realpath -m "$1")
case "$WORK/" in "$REPO"/*) echo "WORK must be outside the repository" >&2; exit 2;; esac
mkdir -p "$WORK"
MODEL_IN=$(cd "$2" && pwd)

LWQUANT=$(realpath "${LWQUANT:-$REPO/build/lwquant}")
MSMODELSLIM_SRC=${MSMODELSLIM_SRC:-$WORK/msmodelslim}
CALIB_SAMPLES=${CALIB_SAMPLES:-8}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
TOOLS=${TOOLS:-lwquant msmodelslim llmcompressor llamacpp}
SCHEMES=${SCHEMES:-w8a8 w8a16 w8a8_dynamic}
COLD=${COLD:-0}
SETUP_ONLY=${SETUP_ONLY:-0}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
# lwquant sets OMP_WAIT_POLICY=PASSIVE for itself; the peers get the same, or on a shared machine torch's spinning
# OpenMP barriers bill them CPU seconds for waiting (msModelSlim's W8A8 on SmolLM2 measured 68 s and 240 s of CPU)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PYTHONDONTWRITEBYTECODE=1

has() { [[ " $TOOLS " == *" $1 "* ]]; }
wants() { [[ " $SCHEMES " == *" $1 "* ]]; }
log() { echo "== $*" >&2; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
[[ -x $LWQUANT ]] || { echo "no lwquant binary at $LWQUANT (scripts/build.sh, or set LWQUANT)" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------- setup
setup_msms() {
  [[ -x $WORK/venv-msms/bin/msmodelslim ]] && { patch_msms; return; }
  [[ -f $MSMODELSLIM_SRC/setup.py ]] || { log "no msModelSlim source at $MSMODELSLIM_SRC: msmodelslim skipped"; TOOLS=${TOOLS//msmodelslim/}; return; }
  log "venv-msms: torch, transformers, msModelSlim from $MSMODELSLIM_SRC"
  python3 -m venv "$WORK/venv-msms"
  local pip="$WORK/venv-msms/bin/pip"
  "$pip" install -q --upgrade pip
  # CPU wheels when that index is reachable, PyPI's default wheel otherwise (it runs on CPU too)
  "$pip" install -q torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null || "$pip" install -q torch
  "$pip" install -q "transformers==4.57.6" "sentencepiece==0.2.0" accelerate numpy gguf protobuf
  (cd /tmp && "$pip" install -q "$MSMODELSLIM_SRC")   # not from inside the source tree (its install guide)
  patch_msms
}

# The one patch msModelSlim needs here, applied to the installed copy (the source tree is left as fetched):
# ir/rms_norm.py's RMSNorm, which iter_smooth puts in place of every norm of a norm-linear subgraph, returns
# `(self.weight * hidden_states).to(torch.float32)`; the next bf16 Linear then fails on CPU with "expected m1 and
# m2 to have the same dtype, but got: float != c10::BFloat16". Patched to return the product in the weight's
# dtype, as the model's own norm does (f32 models are unchanged).
patch_msms() {
  local f; f=$("$WORK/venv-msms/bin/python" -c 'import msmodelslim, os; print(os.path.dirname(msmodelslim.__file__))')/ir/rms_norm.py
  grep -q 'lwquant bench patch' "$f" && return
  sed -i 's/^        return (self.weight \* hidden_states).to(torch.float32)$/        return self.weight * hidden_states  # lwquant bench patch: was .to(torch.float32)/' "$f"
  grep -q 'lwquant bench patch' "$f" || { echo "could not patch $f (msModelSlim changed?)" >&2; exit 1; }
}

setup_llmc() {
  [[ -x $WORK/venv-llmc/bin/python ]] && "$WORK/venv-llmc/bin/python" -c 'import llmcompressor' 2>/dev/null && return
  log "venv-llmc: llmcompressor"
  python3 -m venv "$WORK/venv-llmc"
  "$WORK/venv-llmc/bin/pip" install -q --upgrade pip
  "$WORK/venv-llmc/bin/pip" install -q llmcompressor
}

setup_llamacpp() {
  [[ -x $WORK/llama-build/bin/llama-quantize ]] && return
  if [[ ! -f $WORK/llama.cpp/CMakeLists.txt ]]; then
    log "llama.cpp: the tree bundled in PyPI's llama-cpp-python sdist"
    mkdir -p "$WORK/dl"
    (cd "$WORK/dl" && pip download -q --no-binary :all: --no-deps llama-cpp-python)
    local sdist; sdist=$(ls -t "$WORK"/dl/llama_cpp_python-*.tar.gz | head -1)
    tar -xzf "$sdist" -C "$WORK/dl"
    mv "$WORK/dl/$(basename "$sdist" .tar.gz)/vendor/llama.cpp" "$WORK/llama.cpp"
  fi
  log "building llama-quantize"
  cmake -S "$WORK/llama.cpp" -B "$WORK/llama-build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$WORK/llama-build" --target llama-quantize -j "$THREADS" >/dev/null
}

has msmodelslim && setup_msms
has llmcompressor && setup_llmc
if has llamacpp; then
  setup_llamacpp
  has msmodelslim || setup_msms   # convert_hf_to_gguf.py runs in venv-msms (torch, transformers, sentencepiece)
fi

# ------------------------------------------------------------------------------------- model, data, configs
NAME=$(basename "$MODEL_IN")
MODEL=$WORK/model/$NAME
if [[ ! -f $MODEL/config.json ]]; then
  mkdir -p "$MODEL"
  for f in "$MODEL_IN"/*; do
    [[ -f $f ]] || continue
    ln "$f" "$MODEL/" 2>/dev/null || cp "$f" "$MODEL/"
  done
  # tokenizer_config.json is rewritten, never the original (break the hard link first)
  if [[ -f $MODEL/tokenizer_config.json ]]; then
    rm "$MODEL/tokenizer_config.json"
    python3 - "$MODEL_IN/tokenizer_config.json" "$MODEL" <<'EOF'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
c = json.load(open(src))
if not os.path.exists(os.path.join(dst, "tokenizer.model")) and os.path.exists(os.path.join(dst, "tokenizer.json")):
    c["tokenizer_class"] = "PreTrainedTokenizerFast"   # the slow class would need tokenizer.model
if not c.get("pad_token"):
    c["pad_token"] = c.get("eos_token") or "</s>"
json.dump(c, open(os.path.join(dst, "tokenizer_config.json"), "w"), indent=2)
EOF
  fi
fi

mkdir -p "$WORK/calib" "$WORK/cfg" "$WORK/out" "$WORK/logs"
CALIB=$WORK/calib/calib_zh_en_$CALIB_SAMPLES.jsonl
head -n "$CALIB_SAMPLES" "$REPO/calib/calib_zh_en.jsonl" > "$CALIB"
chmod 640 "$CALIB"
for s in w8a8 w8a16 w8a8_dynamic; do
  sed "s#^  dataset: .*#  dataset: $CALIB#" "$REPO/configs/$s.yaml" > "$WORK/cfg/$s.yaml"
done

GGUF=$WORK/gguf/$NAME-bf16.gguf
if has llamacpp && [[ ! -f $GGUF ]]; then
  log "converting $NAME to a BF16 GGUF"
  mkdir -p "$WORK/gguf"
  "$WORK/venv-msms/bin/python" "$WORK/llama.cpp/convert_hf_to_gguf.py" "$MODEL" --outtype bf16 --outfile "$GGUF" \
    > "$WORK/logs/convert_$NAME.log" 2>&1 || { log "convert_hf_to_gguf.py failed (see $WORK/logs/convert_$NAME.log): llamacpp skipped"; TOOLS=${TOOLS//llamacpp/}; }
fi

# llm-compressor driver (written here so the script is one file)
cat > "$WORK/llmc_run.py" <<'EOF'
import json, os, sys
import torch
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

scheme_name, model_dir, out_dir, calib = sys.argv[1:5]
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
tok = AutoTokenizer.from_pretrained(model_dir)
weights = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="channel", observer="minmax")
if scheme_name == "w8a8":   # static: one asymmetric scale/offset per Linear input, global min/max
    acts = QuantizationArgs(num_bits=8, type="int", symmetric=False, strategy="tensor", dynamic=False,
                            observer="static_minmax")
elif scheme_name == "w8a8_dynamic":
    acts = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="token", dynamic=True)
else:
    acts = None
q = QuantizationModifier(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights,
                                                                      input_activations=acts)},
                         ignore=["lm_head"])
if scheme_name == "w8a8":
    from datasets import Dataset
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier
    texts = [json.loads(l)["inputs_pretokenized"] for l in open(calib, encoding="utf-8")]
    oneshot(model=model, tokenizer=tok, dataset=Dataset.from_dict({"text": texts}),
            recipe=[SmoothQuantModifier(smoothing_strength=0.9), q], num_calibration_samples=len(texts),
            max_seq_length=1 << 16, shuffle_calibration_samples=False, pipeline="sequential", output_dir=out_dir)
else:
    oneshot(model=model, tokenizer=tok, recipe=q, pipeline="datafree", output_dir=out_dir)
EOF

[[ $SETUP_ONLY == 1 ]] && { log "setup done in $WORK"; exit 0; }

# ----------------------------------------------------------------------------------------------- measuring
RESULTS=$WORK/logs/results_$NAME.tsv
: > "$RESULTS"

cache_state() {   # same for every tool: its inputs read once (warm) or the page cache dropped (COLD=1)
  if [[ $COLD == 1 ]]; then sync; echo 3 > /proc/sys/vm/drop_caches; else cat "$@" > /dev/null; fi
}

# measure SCHEME TOOL LABEL INPUT_GLOB -- CMD...
measure() {
  local scheme=$1 tool=$2 label=$3 inputs=$4; shift 5
  local tag=${scheme}_${label// /_}_$NAME
  tag=${tag//[^A-Za-z0-9_.-]/}
  # shellcheck disable=SC2086
  cache_state $inputs
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local rc=0
  (cd /tmp && /usr/bin/time -v -o "$WORK/logs/$tag.time" "$@") > "$WORK/logs/$tag.log" 2>&1 || rc=$?
  local wall cpu rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$WORK/logs/$tag.time")
  cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$WORK/logs/$tag.time")
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2 / 1024}' "$WORK/logs/$tag.time")
  [[ $rc == 0 ]] || { log "$label ($scheme) failed, rc=$rc: see $WORK/logs/$tag.log"; wall=FAIL; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scheme" "$tool" "$label" "$wall" "$cpu" "$rss" "$load" >> "$RESULTS"
  log "$scheme $label: wall $wall s, CPU $cpu s, peak RSS $rss MiB (load $load)"
}

SAFET="$MODEL/*.safetensors"
run_scheme() {
  local s=$1 round=$2 out=$WORK/out
  if has lwquant; then
    rm -rf "$out/lwq"
    measure "$s" lwquant "lwquant$round" "$SAFET" -- "$LWQUANT" quant --model_path "$MODEL" --save_path "$out/lwq" \
      --device cpu --config_path "$WORK/cfg/$s.yaml" --overwrite
    if [[ $s == w8a8 ]]; then
      rm -rf "$out/lwq"
      measure "$s" lwquant "lwquant --no_report$round" "$SAFET" -- "$LWQUANT" quant --model_path "$MODEL" \
        --save_path "$out/lwq" --device cpu --config_path "$WORK/cfg/$s.yaml" --overwrite --no_report
      rm -rf "$out/lwq"   # the peers compute in the model's bf16; lwquant's default is f32
      measure "$s" lwquant "lwquant --no_report bf16$round" "$SAFET" -- "$LWQUANT" quant --model_path "$MODEL" \
        --save_path "$out/lwq" --device cpu --config_path "$WORK/cfg/$s.yaml" --overwrite --no_report \
        --compute_dtype bf16
    fi
    rm -rf "$out/lwq"
  fi
  if has msmodelslim; then
    rm -rf "$out/msms"
    measure "$s" msmodelslim "msModelSlim$round" "$SAFET" -- "$WORK/venv-msms/bin/msmodelslim" quant \
      --model_path "$MODEL" --save_path "$out/msms" --device cpu --model_type default \
      --config_path "$WORK/cfg/$s.yaml" --trust_remote_code False
    rm -rf "$out/msms"
  fi
  if has llmcompressor; then
    rm -rf "$out/llmc"
    measure "$s" llmcompressor "llm-compressor$round" "$SAFET" -- "$WORK/venv-llmc/bin/python" "$WORK/llmc_run.py" \
      "$s" "$MODEL" "$out/llmc" "$CALIB"
    rm -rf "$out/llmc"
  fi
  if has llamacpp && [[ $s == w8a8_dynamic ]]; then   # Q8_0 once per round (it is data-free like both)
    rm -f "$out/q8_0.gguf"
    measure data-free llamacpp "llama-quantize Q8_0$round" "$GGUF" -- "$WORK/llama-build/bin/llama-quantize" \
      "$GGUF" "$out/q8_0.gguf" Q8_0 "$THREADS"
    rm -f "$out/q8_0.gguf"
  fi
}

wants w8a8 && run_scheme w8a8 ""
for ((r = 1; r <= ROUNDS; r++)); do
  sfx=""; [[ $ROUNDS -gt 1 ]] && sfx=" #$r"
  for s in w8a16 w8a8_dynamic; do wants "$s" && run_scheme "$s" "$sfx"; done
done

# ------------------------------------------------------------------------------------------------- report
echo
echo "model $MODEL_IN ($(du -shL "$MODEL_IN" | cut -f1)), $CALIB_SAMPLES calibration prompts, $THREADS threads," \
  "$([[ $COLD == 1 ]] && echo 'page cache dropped before each run' || echo 'inputs read once with cat before each run')"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; ratios are lwquant / peer (first lwquant row of the scheme)"
python3 - "$RESULTS" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def num(x):
    try: return float(x)
    except ValueError: return None
print(f"{'scheme':<13} {'tool':<30} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8} {'wall ×':>7} {'CPU ×':>7} {'RSS ×':>7} {'load':>5}")
base = {}
for scheme, tool, label, wall, cpu, rss, load in rows:
    key = "data-free" if scheme != "w8a8" else "w8a8"
    if tool == "lwquant" and scheme not in base and num(wall) is not None:
        base[scheme] = (num(wall), num(cpu), num(rss))
    # llama-quantize is compared with the data-free lwquant rows (w8a8_dynamic first)
    b = base.get(scheme) or base.get("w8a8_dynamic") or base.get("w8a16")
    r = ["", "", ""]
    if tool != "lwquant" and b and num(wall) is not None:
        r = [f"{b[i] / v:.3f}" if v else "" for i, v in enumerate((num(wall), num(cpu), num(rss)))]
    print(f"{scheme:<13} {label:<30} {wall:>8} {cpu:>8} {rss:>8} {r[0]:>7} {r[1]:>7} {r[2]:>7} {load:>5}")
EOF
