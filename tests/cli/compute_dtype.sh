# `quant --compute_dtype` from the command line (docs/design.md "Compute dtype"): bf16 on a bf16 checkpoint runs and
# says so in quant_report.json; auto (the default) and f32 say what they do; bf16 on a float32 checkpoint and an unknown value are refused with a clear message.
source "$(dirname "$0")/lib.bash"
M="$TMP/qwen3"
mkdir -p "$M"
cp "$ROOT/tests/data/goldens/qwen3/config.json" "$ROOT/tests/data/goldens/qwen3/model.safetensors" "$M/"
cp "$ROOT/tests/data/goldens/qwen3_vl_moe_tiny/tokenizer.json" "$M/"  # the qwen3 golden's vocabulary size (256)
"$LWQ" quant --model_path "$M" --save_path "$TMP/bf16" --quant_type w8a8 --max_calib_samples 2 --compute_dtype bf16 \
  2>"$TMP/log" || { cat "$TMP/log" >&2; fail "--compute_dtype bf16 on a bf16 checkpoint failed"; }
grep -q '"compute_dtype": "bf16"' "$TMP/bf16/quant_report.json" || fail "quant_report.json does not name bf16"
grep -q '"model.layers.0.mlp.down_proj.weight": "W8A8"' "$TMP/bf16/quant_model_description.json" || fail "not W8A8"
# The default (auto) on a bf16 checkpoint: smoothing statistics from bf16 products, said once; a calibrated run is
# never announced as data-free.
"$LWQ" quant --model_path "$M" --save_path "$TMP/auto" --quant_type w8a8 --max_calib_samples 2 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "the default compute dtype failed"; }
grep -q "smoothing statistics: products of the bf16 weights" "$TMP/log" || fail "auto does not say what it does"
grep -q '"statistics_products": "bf16"' "$TMP/auto/quant_report.json" || fail "quant_report.json lacks statistics_products"
! grep -q "data-free configuration" "$TMP/log" || fail "a calibrated run was announced as data-free"
"$LWQ" quant --model_path "$M" --save_path "$TMP/f32" --quant_type w8a8 --max_calib_samples 2 --compute_dtype f32 \
  2>"$TMP/log" || { cat "$TMP/log" >&2; fail "--compute_dtype f32 failed"; }
! grep -q "smoothing statistics: products\|data-free configuration" "$TMP/log" || fail "f32: wrong log line"
grep -q '"statistics_products": "f32"' "$TMP/f32/quant_report.json" || fail "f32: statistics_products is not f32"
expect_error "--compute_dtype bf16 needs a bfloat16 checkpoint" "$LWQ" quant --model_path "$ROOT/examples/stories260K" \
  --save_path "$TMP/x" --quant_type w8a8 --compute_dtype bf16
[ ! -e "$TMP/x" ] || fail "a refused run left $TMP/x"
expect_error "--compute_dtype" "$LWQ" quant --model_path "$M" --save_path "$TMP/y" --quant_type w8a8 --compute_dtype f16
grep -q -- "--compute_dtype" <<< "$("$LWQ" quant --help)" || fail "--help does not list --compute_dtype"
echo OK
