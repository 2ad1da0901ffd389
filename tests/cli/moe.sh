# `quant` and `eval` on a mixture-of-experts model from the command line: the MoE practice (router FLOAT, experts
# W8A8_DYNAMIC, attention static W8A8), the expert-calibration flag, and bad expert checkpoints.
source "$(dirname "$0")/lib.bash"
M="$TMP/qwen3_moe"
mkdir "$M"
cp "$ROOT/tests/data/goldens/qwen3_moe/config.json" "$ROOT/tests/data/goldens/qwen3_moe/model.safetensors" "$M/"
cp "$ROOT/examples/stories260K/tokenizer.json" "$ROOT/examples/stories260K/tokenizer_config.json" \
   "$ROOT/examples/stories260K/special_tokens_map.json" "$M/"
grep -q -- "--moe_calibration" <<< "$("$LWQ" quant --help)" || fail "--help lacks --moe_calibration"
"$LWQ" quant --model_path "$M" --save_path "$TMP/w8a8" --quant_type w8a8 --max_calib_samples 2 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "w8a8 run failed"; }
grep -q "configs/moe/w8a8.yaml" "$TMP/log" || fail "the MoE practice was not chosen"
D="$TMP/w8a8/quant_model_description.json"
grep -q '"model.layers.0.mlp.gate.weight": "FLOAT"' "$D" || fail "router not FLOAT"
grep -q '"model.layers.2.mlp.experts.7.down_proj.weight": "W8A8_DYNAMIC"' "$D" || fail "experts not W8A8_DYNAMIC"
grep -q '"model.layers.2.self_attn.q_proj.weight": "W8A8"' "$D" || fail "attention not W8A8"
grep -q '"expert_tokens"' "$TMP/w8a8/quant_report.json" || fail "no per-expert token counts in the report"
"$LWQ" eval --model "$M" --quantized "$TMP/w8a8" --text "$ROOT/examples/stories260K/README.md" --ctx 64 \
  --max-tokens 128 --json >"$TMP/eval.json" 2>"$TMP/log" || { cat "$TMP/log" >&2; fail "eval failed"; }
grep -q '"top1_agreement"' "$TMP/eval.json" || fail "eval printed no score"
expect_error "moe_calibration" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" --quant_type w8a8 \
  --moe_calibration sometimes
# config.json promises more experts than the checkpoint holds: named, nothing left behind.
mkdir "$TMP/bad" && cp "$M"/* "$TMP/bad/"
sed -i 's/"num_experts": 8/"num_experts": 12/' "$TMP/bad/config.json"
expect_error "num_experts=12" "$LWQ" quant --model_path "$TMP/bad" --save_path "$TMP/out_bad" --quant_type w8a16
[ ! -e "$TMP/out_bad" ] || fail "a folder was left after a bad expert checkpoint"
# top-k larger than the expert count is refused when config.json is read.
sed -i 's/"num_experts": 12/"num_experts": 8/; s/"num_experts_per_tok": 2/"num_experts_per_tok": 9/' "$TMP/bad/config.json"
expect_error "num_experts_per_tok (9)" "$LWQ" quant --model_path "$TMP/bad" --save_path "$TMP/out_bad" --quant_type w8a16
echo ok
