#!/usr/bin/env bash
# CPU time of several lwquant binaries on one model and config, in alternating
# rounds (A B A B ...), so that drift of a shared or virtual machine hits every
# binary alike; prints each run (user, sys, wall, peak RSS) and each binary's
# median CPU (user + sys). The session-8 figures in docs/benchmarks.md ("what
# changed") were taken this way. Needs gawk. Extra quant flags go in EXTRA.
#   MODEL=MODEL_DIR EXTRA=--no_report bench/alternate_cpu.sh ROUNDS CONFIG BIN [BIN...]
set -euo pipefail
rounds=$1 config=$2
shift 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for bin in "$@"; do
    rm -rf "$out/q"
    # shellcheck disable=SC2086
    /usr/bin/time -o "$out/t" -f "$bin %U %S %e %M" "$bin" quant --model_path "${MODEL:?set MODEL}" \
      --save_path "$out/q" --config_path "$config" ${EXTRA:-} > /dev/null 2> "$out/log" \
      || { tail -5 "$out/log"; exit 1; }
    cat "$out/t"
  done
done | gawk '{print; cpu = $2 + $3; n[$1]++; v[$1][n[$1]] = cpu}
  END {for (b in v) {m = asort(v[b]); printf "%s: median CPU %.2f s over %d runs\n", b, v[b][int((m + 1) / 2)], m}}'
