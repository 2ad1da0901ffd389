#!/usr/bin/env bash
# Static W8A8 with no smoothing, smooth_quant, iter_smooth, flex_smooth_quant and quarot + iter_smooth, through the
# real `lwquant quant` + `lwquant eval`, on stories260K and its outlier-channel copy (tools/make_outlier_model.py).
# Prints one line per (model, variant, text): ppl float, ppl quantized, Δppl %, KL, top-1, quant wall seconds.
# Usage: bench/outlier_quality.sh WORKDIR [SAMPLES]   (from the repo root, after building lwquant)
set -euo pipefail
work=${1:?usage: bench/outlier_quality.sh WORKDIR [SAMPLES]}
samples=${2:-0}   # --max_calib_samples (0 = the whole default set)
bin=${LWQUANT:-build/lwquant}
mkdir -p "$work"
python3 tools/make_outlier_model.py examples/stories260K "$work/stories260K-outliers"

w8a8='    - type: linear_quant
      qconfig:
        act: {scope: per_tensor, dtype: int8, symmetric: false, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}'
declare -A lists=(
  [none]=""
  [smooth_quant]="    - type: smooth_quant"
  [iter_smooth]="    - type: iter_smooth"
  [flex_smooth_quant]="    - type: flex_smooth_quant"
  [quarot+iter_smooth]="    - type: quarot
    - type: iter_smooth"
)
for v in none smooth_quant iter_smooth flex_smooth_quant quarot+iter_smooth; do
  {
    echo "apiversion: modelslim_v1"
    echo "spec:"
    echo "  process:"
    [ -n "${lists[$v]}" ] && echo "${lists[$v]}"
    echo "$w8a8"
    echo "  save:"
    echo "    - type: ascendv1_saver"
    echo "  dataset: calib_zh_en.jsonl"
  } > "$work/$v.yaml"
done

for m in examples/stories260K "$work/stories260K-outliers"; do
  n=$(basename "$m")
  for v in none smooth_quant iter_smooth flex_smooth_quant quarot+iter_smooth; do
    out="$work/q/$n-$v"
    start=$(date +%s.%N)
    "$bin" quant --model_path "$m" --save_path "$out" --config_path "$work/$v.yaml" --overwrite \
      --max_calib_samples "$samples" > "$work/$n-$v.log" 2>&1
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    for t in tinystories_sample wikitext2_test_head; do
      j=$("$bin" eval --model "$m" --quantized "$out" --text "tests/data/text/$t.txt" --json 2>/dev/null)
      python3 - "$n" "$v" "$t" "$wall" "$j" <<'PY'
import json, sys
n, v, t, wall, j = sys.argv[1:6]
r = json.loads(j)
pf, pq = r["ppl_float"], r["ppl_quantized"]
print(f"{n:24s} {v:20s} {t:20s} float {pf:9.4f} quant {pq:9.4f} dppl {100*(pq-pf)/pf:+8.3f} % "
      f"KL {r['kl']:.5f} top1 {r['top1_agreement']:.4f} quant {float(wall):.1f} s")
PY
    done
  done
done
