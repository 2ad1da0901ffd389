# `quant` and `eval` on a Qwen3-VL-MoE from the command line (the tiny random model of the goldens): the
# reference practice unchanged with --model_type Qwen3-VL-30B-A3B / 235B-A22B, the built-in practices, the names vLLM-Ascend loads
# (vision Linears all described, per-expert experts, router FLOAT), text eval, and bad inputs.
source "$(dirname "$0")/lib.bash"
M="$ROOT/tests/data/goldens/qwen3_vl_moe_tiny"
P="$ROOT/tests/data/configs/qwen3_vl_moe_w8a8.yaml"
cp "$P" "$TMP/practice.yaml"  # unchanged: quarot, iter_smooth, W8A8 static, W8A8_DYNAMIC experts
for T in Qwen3-VL-30B-A3B Qwen3-VL-235B-A22B; do
  "$LWQ" quant --model_path "$M" --save_path "$TMP/out_$T" --model_type "$T" --config_path "$TMP/practice.yaml" \
    2>"$TMP/log" || { cat "$TMP/log" >&2; fail "reference Qwen3-VL-MoE practice failed with --model_type $T"; }
done
O="$TMP/out_Qwen3-VL-30B-A3B"
D="$O/quant_model_description.json"
grep -q "calibration: 2 samples (2 with an image)" "$TMP/log" || fail "calibImages was not the calibration set"
grep -q '"model.visual.blocks.0.attn.qkv.weight": "W8A8"' "$D" || fail "vision qkv not W8A8"
grep -q '"model.visual.blocks.2.mlp.linear_fc2.weight": "FLOAT"' "$D" || fail "vision linear_fc2 not described FLOAT"
grep -q '"model.visual.merger.linear_fc1.weight": "FLOAT"' "$D" || fail "merger not described FLOAT"
grep -q '"model.visual.deepstack_merger_list.1.linear_fc2.weight": "FLOAT"' "$D" || fail "deepstack merger not FLOAT"
grep -q '"model.language_model.layers.2.mlp.experts.3.down_proj.weight": "W8A8_DYNAMIC"' "$D" || fail "expert type"
grep -q '"model.language_model.layers.0.mlp.gate.weight": "FLOAT"' "$D" || fail "router not FLOAT"
grep -q '"model.language_model.layers.0.self_attn.o_proj.weight": "W8A8"' "$D" || fail "o_proj not W8A8"
! grep -q 'gate_up_proj' "$D" || fail "a fused expert tensor was written"
[ -f "$O/Qwen3-VL-30B-A3B_best_practice.yaml" ] || fail "no best-practice yaml"
[ -f "$O/optional/quarot.safetensors" ] || fail "quarot's optional/quarot.safetensors was not written"
grep -q '"global_rotation": "optional/quarot.safetensors"' "$D" || fail "no quarot entry in the description"
"$LWQ" eval --model "$M" --quantized "$O" --text "$ROOT/tests/data/text/tinystories_sample.txt" --max-tokens 200 \
  >"$TMP/eval" 2>"$TMP/log" || { cat "$TMP/log" >&2; fail "eval of the Qwen3-VL-MoE output failed"; }
grep -q "^top1_agreement: 0\.[6-9]" "$TMP/eval" || fail "eval: $(cat "$TMP/eval")"
# Image + text eval: the golden's two images through both chains (tower and text layers deployed), the
# quantized one built from the folder alone (QuaRot-rotated embedding, tower outputs and head).
"$LWQ" eval --model "$M" --quantized "$O" --images "$M/images" >"$TMP/eval" 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "image eval of the Qwen3-VL-MoE output failed"; }
grep -q "^samples: 2 (2 with an image)" "$TMP/eval" || fail "image eval: $(cat "$TMP/eval")"
grep -q "^top1_agreement: \(0\.[6-9]\|1\.0\)" "$TMP/eval" || fail "image eval top-1: $(cat "$TMP/eval")"
grep -q "^kl: 0\.0[0-4]" "$TMP/eval" || fail "image eval KL: $(cat "$TMP/eval")"
"$LWQ" eval --model "$M" --quantized "$O" --images "$M/images" --max_calib_samples 1 --json >"$TMP/eval" \
  2>"$TMP/log" || { cat "$TMP/log" >&2; fail "image eval --json failed"; }
grep -q '"mode":"images".*"samples":1' "$TMP/eval" || fail "image eval json: $(cat "$TMP/eval")"
# Bad inputs of image eval: a missing image, a text-only set, another model's folder, flags of another mode.
printf '{"image": "nowhere.jpg"}\n' >"$TMP/missing_eval.jsonl"
expect_error "nowhere.jpg does not exist" "$LWQ" eval --model "$M" --quantized "$O" --images "$TMP/missing_eval.jsonl"
printf '{"text": "no image here"}\n' >"$TMP/text_eval.jsonl"
expect_error "entry 0 has no image" "$LWQ" eval --model "$M" --quantized "$O" --images "$TMP/text_eval.jsonl"
"$LWQ" quant --model_path "$ROOT/examples/stories260K" --save_path "$TMP/stories" --quant_type w8a16 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "stories260K w8a16 failed"; }
expect_error "is not a Qwen3-VL-MoE output" "$LWQ" eval --model "$M" --quantized "$TMP/stories" --images "$M/images"
expect_error "--images scores Qwen3-VL-MoE models" "$LWQ" eval --model "$ROOT/examples/stories260K" \
  --quantized "$TMP/stories" --images "$M/images"
expect_error "--text and --images select two eval modes" "$LWQ" eval --model "$M" --quantized "$O" --images "$M/images" \
  --text "$ROOT/tests/data/text/tinystories_sample.txt"
expect_error "--ctx applies to --text" "$LWQ" eval --model "$M" --quantized "$O" --images "$M/images" --ctx 16
# The built-in practice (data-free W8A8_DYNAMIC) and a folder of images as --calib_data.
"$LWQ" quant --model_path "$M" --save_path "$TMP/dyn" --quant_type w8a8_dynamic 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "--quant_type w8a8_dynamic failed"; }
grep -q "configs/vlm/w8a8_dynamic.yaml" "$TMP/log" || fail "the vlm practice was not chosen"
grep -q '"model.visual.blocks.1.attn.proj.weight": "W8A8_DYNAMIC"' "$TMP/dyn/quant_model_description.json" \
  || fail "vision proj not W8A8_DYNAMIC"
"$LWQ" quant --model_path "$M" --save_path "$TMP/folder" --config_path "$TMP/practice.yaml" \
  --calib_data "$M/images" 2>"$TMP/log" || { cat "$TMP/log" >&2; fail "a folder of images as --calib_data failed"; }
# Bad inputs: a text-only set, a missing image, a model type of another family, a bad vision tower.
printf '{"text": "no image here"}\n' >"$TMP/text.jsonl"
expect_error "entry 0 has no image" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" \
  --config_path "$TMP/practice.yaml" --calib_data "$TMP/text.jsonl"
# Allowed, text-only entries join image ones; alone they leave the tower's static Linears without data.
expect_error "no calibration data reached this Linear" "$LWQ" quant \
  --model_path "$M" --save_path "$TMP/x" --config_path "$TMP/practice.yaml" --calib_data "$TMP/text.jsonl" \
  --allow_text_only_calib
printf '{"image": "%s"}\n' "$M/images/smooth.jpg" >>"$TMP/text.jsonl"
"$LWQ" quant --model_path "$M" --save_path "$TMP/textonly" --config_path "$TMP/practice.yaml" \
  --calib_data "$TMP/text.jsonl" --allow_text_only_calib 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "--allow_text_only_calib refused"; }
grep -q "calibration: 2 samples (1 with an image)" "$TMP/log" || fail "text-only entry not used"
printf '{"image": "nowhere.jpg"}\n' >"$TMP/missing.jsonl"
expect_error "nowhere.jpg does not exist" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" \
  --config_path "$TMP/practice.yaml" --calib_data "$TMP/missing.jsonl"
expect_error "does not name a vision-language model" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" \
  --model_type Qwen3-30B --config_path "$TMP/practice.yaml"
expect_error "names a vision-language model" "$LWQ" quant --model_path "$ROOT/examples/stories260K" \
  --save_path "$TMP/x" --model_type Qwen3-VL-30B-A3B --quant_type w8a16
expect_error "apiversion multimodal_vlm_modelslim_v1 is for vision-language models" "$LWQ" quant \
  --model_path "$ROOT/examples/stories260K" --save_path "$TMP/x" --config_path "$TMP/practice.yaml"
mkdir "$TMP/bad" && cp "$M"/{config,tokenizer,preprocessor_config}.json "$M/model.safetensors" "$TMP/bad/"
sed -i 's/"intermediate_size": 64/"intermediate_size": 80/' "$TMP/bad/config.json"
expect_error "model.visual.blocks.0.mlp.linear_fc1.weight' has shape [64, 32] but" "$LWQ" quant \
  --model_path "$TMP/bad" --save_path "$TMP/x" --config_path "$TMP/practice.yaml"
[ ! -e "$TMP/x" ] || fail "a folder was left after a refused run"
# The practice with quarot's online rotation: every text layer's o_proj gets the heads rotation (no dense MLP
# for down_proj's), the tower none; image eval applies it from the folder.
sed 's/      block_size: 32/      block_size: 32\n      online: true\n      max_tp_size: 2/' "$P" >"$TMP/online.yaml"
"$LWQ" quant --model_path "$M" --save_path "$TMP/online" --config_path "$TMP/online.yaml" 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "the practice with online quarot failed"; }
grep -q '"heads_rotation": {' "$TMP/online/quant_model_description.json" || fail "no metadata.quarot"
grep -q '"model.language_model.layers.2.self_attn.o_proj"' "$TMP/online/quant_model_description.json" \
  || fail "layer 2's o_proj not listed in metadata.quarot"
"$LWQ" eval --model "$M" --quantized "$TMP/online" --images "$M/images" >"$TMP/eval" 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "image eval of the online-rotated output failed"; }
grep -q "^kl: 0\.0[0-4]" "$TMP/eval" || fail "online image eval KL: $(cat "$TMP/eval")"
sed 's/      block_size: 32/      block_size: 32\n      online: true\n      down_proj_online_layers: [1]/' "$P" >"$TMP/bad.yaml"
expect_error "lists layer 1, a mixture-of-experts layer" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" \
  --config_path "$TMP/bad.yaml"
[ ! -e "$TMP/x" ] || fail "a folder was left after a refused run"
echo ok
