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
# Malformed folders (docs/reliability.md): one "error: ..." naming the file and the key or tensor, exit code 1
# (2 is the CLI's "unexpected failure", e.g. an escaped JSON library exception).
expect_exit_1() {
  local want="$1"; shift
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq 1 ] || { cat "$TMP/err" >&2; fail "exit code $rc, expected 1: $*"; }
  grep -qF -- "$want" "$TMP/err" || { cat "$TMP/err" >&2; fail "stderr lacks '$want' for: $*"; }
  ! grep -q "unexpected failure" "$TMP/err" || fail "unexpected failure for: $*"
  [ "$(grep -c '^error: ' "$TMP/err")" -eq 1 ] || { cat "$TMP/err" >&2; fail "not one error line for: $*"; }
}
# edited <name> <file> <sed expression>: a copy of the W8A8 folder with one file edited (the edit must apply).
edited() {
  cp -r "$TMP/w8a8" "$TMP/$1"
  sed -i -e "$3" "$TMP/$1/$2"
  ! cmp -s "$TMP/w8a8/$2" "$TMP/$1/$2" || fail "edit $3 of $2 did not apply"
  echo "$TMP/$1"
}
run_eval() { "$LWQ" eval --model "$model" --quantized "$1" --text "$text" --max-tokens 64; }
desc=quant_model_description.json
expect_exit_1 "$desc: key 'model_quant_type' must be a string, got 8" \
  run_eval "$(edited mqt_number $desc 's/"model_quant_type": "W8A8"/"model_quant_type": 8/')"
expect_exit_1 "$desc: key 'model.norm.weight' must be a type string (\"FLOAT\", \"W8A8\", ...), got {}" \
  run_eval "$(edited value_object $desc 's/"model.norm.weight": "FLOAT"/"model.norm.weight": {}/')"
expect_exit_1 "model_quant_type is \"W8A16\"" \
  run_eval "$(edited mqt_w8a16 $desc 's/"model_quant_type": "W8A8"/"model_quant_type": "W8A16"/')"
expect_exit_1 "config.json: 'hidden_size' is 128 but the float model's" \
  run_eval "$(edited hidden config.json 's/"hidden_size": 64/"hidden_size": 128/')"
expect_exit_1 "config.json: 'num_hidden_layers' is 4" \
  run_eval "$(edited layers config.json 's/"num_hidden_layers": 5/"num_hidden_layers": 4/')"
expect_exit_1 "must be F32" run_eval "$(edited bf16 config.json 's/"torch_dtype": "float32"/"torch_dtype": "bfloat16"/')"
cp -r "$TMP/w8a8" "$TMP/nocfg"
rm "$TMP/nocfg/config.json"
expect_exit_1 "config.json is missing" run_eval "$TMP/nocfg"
cp -r "$TMP/w8a8" "$TMP/stray"
cp "$TMP/w8a8/quant_model_weights-00001-of-00001.safetensors" "$TMP/stray/model.safetensors"
expect_exit_1 "stray weights file model.safetensors" run_eval "$TMP/stray"
echo "eval: ok ($(cat "$TMP/json"))"
