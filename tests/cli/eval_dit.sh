# `eval` on a Wan2.1 DiT: the mindie_format output of the reference practice scored against the float model on
# seeded random block inputs (text and --json agree, errors small but non-zero), an all-FLOAT copy scores exactly
# zero, the LLM-only flags are refused, and damaged folders give one clear error.
source "$(dirname "$0")/lib.bash"
M="$TMP/wan"
mkdir "$M"
cp "$ROOT/tests/data/goldens/wan_tiny/"{config.json,diffusion_pytorch_model.safetensors} "$M/"
"$LWQ" quant --model_path "$M" --save_path "$TMP/dyn" --quant_type w8a8_dynamic 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "quant failed"; }
"$LWQ" eval --model "$M" --quantized "$TMP/dyn" --json >"$TMP/json" 2>"$TMP/err" || { cat "$TMP/err" >&2; fail "eval --json"; }
[ "$(wc -l <"$TMP/json")" -eq 1 ] || fail "stdout is not one line: $(cat "$TMP/json")"
grep -q '"mode":"dit","model_quant_type":"W8A8_DYNAMIC","inputs":"random","samples":2,"tokens":64' "$TMP/json" \
  || fail "unexpected header: $(cat "$TMP/json")"
number='-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'
value() { sed -E -n "s/.*\"$1\":($number).*/\1/p" "$TMP/json"; }
awk -v e="$(value final_rel_l2)" -v c="$(value final_cosine)" 'BEGIN {
  if (!(e > 0 && e < 0.05)) { print "final_rel_l2 " e; exit 1 }
  if (!(c > 0.99 && c <= 1)) { print "final_cosine " c; exit 1 }
}' >"$TMP/check" || fail "$(cat "$TMP/check")"
[ "$(grep -o '"block":' "$TMP/json" | wc -l)" -eq 2 ] || fail "not one entry per block: $(cat "$TMP/json")"
"$LWQ" eval --model "$M" --quantized "$TMP/dyn" >"$TMP/plain" 2>/dev/null
grep -q "^inputs: random (2 samples, 64 tokens)$" "$TMP/plain" || fail "text output: $(cat "$TMP/plain")"
grep -Eq "^final_cosine: 0\.99" "$TMP/plain" || fail "no final_cosine line: $(cat "$TMP/plain")"
# An all-FLOAT copy: both chains run the same arithmetic.
cat >"$TMP/float.yaml" <<'YAML'
apiversion: multimodal_sd_modelslim_v1
spec:
  process:
    - type: "linear_quant"
      qconfig:
        act: {scope: per_token, dtype: int8, symmetric: True, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
      include: ["*"]
      exclude: ["*"]
  save:
    - type: "mindie_format_saver"
      part_file_size: 0
YAML
"$LWQ" quant --model_path "$M" --save_path "$TMP/float" --config_path "$TMP/float.yaml" --allow_float_copy 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "float copy failed"; }
"$LWQ" eval --model "$M" --quantized "$TMP/float" --json >"$TMP/json" 2>/dev/null
grep -q '"final_rel_l2":0.0,"final_cosine":1.0' "$TMP/json" || fail "float copy is not exact: $(cat "$TMP/json")"
# Flags of the other mode, and folders MindIE-SD would refuse.
expect_error "--text applies to language models" "$LWQ" eval --model "$M" --quantized "$TMP/dyn" --text "$ROOT/README.md"
expect_error "--calib_data applies to diffusion transformers" "$LWQ" eval --model "$ROOT/examples/stories260K" \
  --quantized "$TMP/dyn" --calib_data "$ROOT/README.md"
expect_error "--seed seeds the random inputs" "$LWQ" eval --model "$M" --quantized "$TMP/dyn" --seed 3 \
  --calib_data "$ROOT/tests/data/goldens/wan_tiny/reference.safetensors"
expect_error "is not a mindie_format folder" "$LWQ" eval --model "$M" --quantized "$M"
cp -rp "$TMP/dyn" "$TMP/name"
mv "$TMP/name/quant_model_description_w8a8_dynamic.json" "$TMP/name/quant_model_description_w8a8.json"
expect_error "model_quant_type is \"W8A8_DYNAMIC\" but the file is named quant_model_description_w8a8.json" \
  "$LWQ" eval --model "$M" --quantized "$TMP/name"
cp -rp "$TMP/dyn" "$TMP/mode"
chmod 0644 "$TMP/mode/quant_model_weight_w8a8_dynamic.safetensors"
expect_error "has mode 0644" "$LWQ" eval --model "$M" --quantized "$TMP/mode"
echo "eval_dit: ok"
