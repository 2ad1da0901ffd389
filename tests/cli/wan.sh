# `quant` on a Wan2.1 DiT from the command line: msModelSlim's wan2_1_w8a8_dynamic.yaml unchanged with
# --model_type Wan2.1 and Wan2_1, the built-in Wan practice, a diffusers pipeline folder, the keys lwquant
# reports but does not act on, and wrong model types / configs.
source "$(dirname "$0")/lib.bash"
G="$ROOT/tests/data/goldens/wan_tiny"
M="$TMP/wan"
mkdir "$M"
cp "$G/config.json" "$G/diffusion_pytorch_model.safetensors" "$M/"
P="$ROOT/tests/data/configs/wan2_1_w8a8_dynamic.yaml"
for T in Wan2.1 Wan2_1; do
  "$LWQ" quant --model_path "$M" --save_path "$TMP/out_$T" --model_type "$T" --config_path "$P" 2>"$TMP/log" \
    || { cat "$TMP/log" >&2; fail "reference Wan practice failed with --model_type $T"; }
  D="$TMP/out_$T/quant_model_description_w8a8_dynamic.json"
  grep -q '"blocks.1.self_attn.q.weight": "W8A8_DYNAMIC"' "$D" || fail "self_attn.q not W8A8_DYNAMIC"
  grep -q '"blocks.1.ffn.2.weight": "FLOAT"' "$D" || fail "ffn.2 not FLOAT"
  [ -f "$TMP/out_$T/quant_model_weight_w8a8_dynamic.safetensors" ] || fail "no weight file"
  [ -f "$TMP/out_$T/${T}_best_practice.yaml" ] || fail "no ${T}_best_practice.yaml"
done
grep -q "frame_num" "$TMP/log" || fail "the keys not acted on were not reported"
! grep -q "belong to no known module" "$TMP/log" || fail "diffusers names were taken for unknown tensors"
[ "$(grep -c "not acted on" "$TMP/log")" = 1 ] || fail "the keys not acted on were reported more than once"
# The built-in Wan practice, from a diffusers pipeline folder (model_index.json + transformer/).
mkdir -p "$TMP/pipe/transformer"
cp "$M"/* "$TMP/pipe/transformer/" && echo '{"_class_name": "WanPipeline"}' >"$TMP/pipe/model_index.json"
"$LWQ" quant --model_path "$TMP/pipe" --save_path "$TMP/builtin" --quant_type w8a8_dynamic 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "--quant_type w8a8_dynamic on a Wan pipeline failed"; }
grep -q "configs/wan/w8a8_dynamic.yaml" "$TMP/log" || fail "the Wan practice was not chosen"
grep -q "diffusers pipeline" "$TMP/log" || fail "the pipeline's transformer folder was not reported"
cmp "$TMP/builtin/quant_model_weight_w8a8_dynamic.safetensors" \
    "$TMP/out_Wan2.1/quant_model_weight_w8a8_dynamic.safetensors" || fail "built-in practice differs from the reference"
# Static W8A8 needs captured block inputs, not prompts.
expect_error "tools/capture_wan_inputs.py" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" --quant_type w8a8
expect_error "no built-in Wan2.1 practice for --quant_type w8a16" "$LWQ" quant --model_path "$M" \
  --save_path "$TMP/x" --quant_type w8a16
expect_error "--calib_memory_limit takes a positive size such as 8GiB" "$LWQ" quant --model_path "$M" \
  --save_path "$TMP/x" --quant_type w8a8_dynamic --calib_memory_limit 12parsecs
expect_error "--calib_memory_limit takes a positive size" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" \
  --quant_type w8a8_dynamic --calib_memory_limit 0
"$LWQ" quant --model_path "$M" --save_path "$TMP/limit" --quant_type w8a8_dynamic --calib_memory_limit 1.5GiB \
  2>"$TMP/log" || { cat "$TMP/log" >&2; fail "--calib_memory_limit 1.5GiB refused"; }
"$LWQ" inspect --model "$TMP/pipe" >"$TMP/inspect" || fail "inspect failed on a Wan pipeline"
grep -q "^model_type: wan2.1" "$TMP/inspect" && grep -q "^layers: 2" "$TMP/inspect" || fail "inspect: $(cat "$TMP/inspect")"
# A Wan model type on a language model, and the reverse.
expect_error "names a Wan2.1 model" "$LWQ" quant --model_path "$ROOT/examples/stories260K" --save_path "$TMP/x" \
  --model_type Wan2.1 --config_path "$P"
expect_error "does not name a Wan model" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" --model_type Qwen3-32B \
  --config_path "$P"
# A mindie saver asked to store a type it cannot: refused before any work.
sed 's/scope: "per_token"   # default is per_tensor/scope: "per_tensor"/; s/symmetric: True      # default is True/symmetric: False/' \
  "$P" >"$TMP/w8a16.yaml"
sed -i '/act:/,/method: "minmax"      # default is minmax/d' "$TMP/w8a16.yaml"
expect_error "cannot store the W8A16 Linears of processor spec.process[0]" "$LWQ" quant --model_path "$M" \
  --save_path "$TMP/x" --config_path "$TMP/w8a16.yaml"
[ ! -e "$TMP/x" ] || fail "a folder was left after a refused run"
echo ok
