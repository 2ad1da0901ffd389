# `eval --json` prints one JSON object with the quality figures of a quantized folder against its float model;
# the plain output carries the same figures; a folder that is no ascendV1 output of the model is refused.
source "$(dirname "$0")/lib.bash"
model="$ROOT/examples/stories260K"
text="$ROOT/tests/data/text/tinystories_sample.txt"
"$LWQ" quant --model_path "$model" --save_path "$TMP/w8a8" --quant_type w8a8 --max_calib_samples 8 \
  >/dev/null 2>"$TMP/qerr" || { cat "$TMP/qerr" >&2; fail "quant failed"; }
"$LWQ" eval --model "$model" --quantized "$TMP/w8a8" --text "$text" --json >"$TMP/json" 2>"$TMP/err" ||
  { cat "$TMP/err" >&2; fail "eval --json failed"; }
[ "$(wc -l <"$TMP/json")" -eq 1 ] || fail "stdout is not one line: $(cat "$TMP/json")"
grep -q '^{.*}$' "$TMP/json" || fail "stdout is not a JSON object: $(cat "$TMP/json")"
number='-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'
for key in ppl_float ppl_quantized delta_ppl kl top1_agreement tokens; do
  grep -Eq "\"$key\":$number[,}]" "$TMP/json" || fail "no numeric \"$key\" in $(cat "$TMP/json")"
done
grep -q '"model_quant_type":"W8A8"' "$TMP/json" || fail "model_quant_type is not W8A8: $(cat "$TMP/json")"
value() { sed -E -n "s/.*\"$1\":($number).*/\1/p" "$TMP/json"; }
# delta = quantized − float; KL ≥ 0; top-1 in [0, 1]; every token after a window's first is scored;
# W8A8 stays within 5 % of the float perplexity on this text.
awk -v f="$(value ppl_float)" -v q="$(value ppl_quantized)" -v d="$(value delta_ppl)" -v kl="$(value kl)" \
    -v t1="$(value top1_agreement)" -v n="$(value tokens)" 'BEGIN {
  if (f <= 1 || q <= 1) { print "perplexities " f ", " q; exit 1 }
  if (d - (q - f) > 1e-9 || (q - f) - d > 1e-9) { print "delta_ppl " d " is not " q " - " f; exit 1 }
  if (kl < 0) { print "negative kl " kl; exit 1 }
  if (t1 < 0 || t1 > 1) { print "top1_agreement " t1 " outside [0, 1]"; exit 1 }
  if (n < 1000 || n != int(n)) { print "tokens " n; exit 1 }
  if ((d < 0 ? -d : d) / f >= 0.05) { print "relative delta " d / f " is not below 5 %"; exit 1 }
}' >"$TMP/check" || fail "$(cat "$TMP/check")"
# The text output reports the same run.
"$LWQ" eval --model "$model" --quantized "$TMP/w8a8" --text "$text" >"$TMP/plain" 2>/dev/null
grep -q "^tokens: $(value tokens)$" "$TMP/plain" || fail "text output disagrees: $(cat "$TMP/plain")"
grep -Eq '^delta_ppl: [-+][0-9.]+ \([-+][0-9.]+%\)$' "$TMP/plain" || fail "no delta_ppl line: $(cat "$TMP/plain")"
# Bad --quantized folders: the float model itself, a missing folder, a truncated shard.
expect_error "quant_model_description.json is missing" "$LWQ" eval --model "$model" --quantized "$model" --text "$text"
expect_error "does not exist" "$LWQ" eval --model "$model" --quantized "$TMP/none" --text "$text"
cp -r "$TMP/w8a8" "$TMP/cut"
shard="$TMP/cut/quant_model_weights-00001-of-00001.safetensors"
[ -f "$shard" ] || fail "no $shard"
truncate -s -1000 "$shard"
expect_error "quant_model_weights-00001-of-00001.safetensors" \
  "$LWQ" eval --model "$model" --quantized "$TMP/cut" --text "$text"
echo "eval: ok ($(cat "$TMP/json"))"
