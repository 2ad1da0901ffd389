# Every scheme lwquant runs quantizes stories260K end to end and `eval` scores
# it with the deployed arithmetic (tests/data/configs/schemes/*.yaml; the
# practices w4a8 and w8a8_mxfp8 via --quant_type); bad scheme inputs exit
# non-zero with a clear message.
source "$(dirname "$0")/lib.bash"
model="$ROOT/examples/stories260K"
text="$ROOT/tests/data/text/tinystories_sample.txt"
number='-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'
check() {  # check <name> <expected model_quant_type> <max relative Δppl> <quant args...>
  local name="$1" type="$2" bound="$3"; shift 3
  "$LWQ" quant --model_path "$model" --save_path "$TMP/$name" --max_calib_samples 4 --no_report "$@" \
    >/dev/null 2>"$TMP/qerr" || { cat "$TMP/qerr" >&2; fail "$name: quant failed"; }
  "$LWQ" eval --model "$model" --quantized "$TMP/$name" --text "$text" --max-tokens 600 --json >"$TMP/json" \
    2>"$TMP/err" || { cat "$TMP/err" >&2; fail "$name: eval failed"; }
  grep -q "\"model_quant_type\":\"$type\"" "$TMP/json" || fail "$name: model_quant_type is not $type: $(cat "$TMP/json")"
  local f q
  f=$(sed -E -n "s/.*\"ppl_float\":($number).*/\1/p" "$TMP/json")
  q=$(sed -E -n "s/.*\"ppl_quantized\":($number).*/\1/p" "$TMP/json")
  awk -v f="$f" -v q="$q" -v b="$bound" 'BEGIN { d = (q - f) / f; if (!(q > 1) || d > b || d < -b) exit 1 }' ||
    fail "$name: perplexity $q against float $f is outside ±$bound relative"
  rm -rf "${TMP:?}/$name"
}
cfg="$ROOT/tests/data/configs/schemes"
# name                     model_quant_type   bound  (W4A8_DYNAMIC never sets model_quant_type, spec §3.8)
check w8a8_histogram        W8A8              0.1   --config_path "$cfg/w8a8_histogram.yaml"
check w8a8_ssz              W8A8              0.1   --config_path "$cfg/w8a8_ssz.yaml"
check w8a8_gptq             W8A8              0.1   --config_path "$cfg/w8a8_gptq.yaml"
check w8a8_mix              W8A8_MIX          0.05  --config_path "$cfg/w8a8_mix.yaml"
check w8a8_dynamic_gptq     W8A8_DYNAMIC      0.05  --config_path "$cfg/w8a8_dynamic_gptq.yaml"
check w8a8_dynamic_group    W8A8_DYNAMIC      0.05  --config_path "$cfg/w8a8_dynamic_group.yaml"
check w8a16_ssz             W8A16             0.02  --config_path "$cfg/w8a16_ssz.yaml"
check w8a16_gptq_asym       W8A16             0.02  --config_path "$cfg/w8a16_gptq_asym.yaml"
check w8a16_group           W8A16             0.02  --config_path "$cfg/w8a16_group.yaml"
check w4a8_dynamic          W8A8_DYNAMIC      0.3   --config_path "$cfg/w4a8_dynamic.yaml"
check w4a8_dynamic_minmax   W8A8_DYNAMIC      0.4   --config_path "$cfg/w4a8_dynamic_minmax.yaml"
check w4a8_dynamic_gptq     W8A8_DYNAMIC      0.3   --config_path "$cfg/w4a8_dynamic_gptq.yaml"
check w4a4_dynamic          W4A4_DYNAMIC      1.5   --config_path "$cfg/w4a4_dynamic.yaml"
check w4a4_dynamic_ssz      W4A4_DYNAMIC      1.5   --config_path "$cfg/w4a4_dynamic_ssz.yaml"
check w4a4_dynamic_gptq_asym W4A4_DYNAMIC     1.5   --config_path "$cfg/w4a4_dynamic_gptq_asym.yaml"
check w4a4_dynamic_group    W4A4_DYNAMIC      1.5   --config_path "$cfg/w4a4_dynamic_group.yaml"
check wfp8afp8_dynamic      WFP8AFP8_DYNAMIC  0.05  --config_path "$cfg/wfp8afp8_dynamic.yaml"
check w8a8_mxfp8            W8A8_MXFP8        0.05  --config_path "$cfg/w8a8_mxfp8.yaml"
check w4a8_mxfp             W4A8_MXFP         0.4   --config_path "$cfg/w4a8_mxfp.yaml"
check w4a4_mxfp4            W4A4_MXFP4        1.0   --config_path "$cfg/w4a4_mxfp4.yaml"
check w8a8_mxfp8_mse_round  W8A8_MXFP8        0.05  --config_path "$cfg/w8a8_mxfp8_mse_round.yaml"
check w4a8_mxfp_ceil_x      W4A8_MXFP         0.4   --config_path "$cfg/w4a8_mxfp_ceil_x.yaml"
check w4a4_mxfp4_ceil_x     W4A4_MXFP4        1.0   --config_path "$cfg/w4a4_mxfp4_ceil_x.yaml"
check w4a4_mxfp4_ceil_x_search W4A4_MXFP4     1.0   --config_path "$cfg/w4a4_mxfp4_ceil_x_search.yaml"
check w4a4_mxfp4_fouroversix W4A4_MXFP4       1.0   --config_path "$cfg/w4a4_mxfp4_fouroversix.yaml"
check w4a4_mxfp4_dualscale  W4A4_MXFP4_DUALSCALE 1.0 --config_path "$cfg/w4a4_mxfp4_dualscale.yaml"
check w4a4_mxfp4_dualscale_32 W4A4_MXFP4_DUALSCALE 1.0 --config_path "$cfg/w4a4_mxfp4_dualscale_32.yaml"
check w8a8_mix_mean         W8A8_MIX          0.05  --config_path "$cfg/w8a8_mix_mean.yaml"
check practice_w4a8         W8A8_DYNAMIC      0.05  --quant_type w4a8
check practice_w8a8_mxfp8   W8A8_MXFP8        0.05  --quant_type w8a8_mxfp8

# Bad scheme inputs: refused with the reason and a non-zero exit.
bad() {  # bad <file name> <qconfig body>
  printf 'apiversion: modelslim_v1\nspec:\n  process:\n    - type: linear_quant\n      qconfig:\n%s\n  save:\n    - type: ascendv1_saver\n  dataset: calib_zh_en.jsonl\n' "$2" >"$TMP/$1"
}
bad minmax_group.yaml '        weight: {dtype: int8, scope: per_group, symmetric: true, method: minmax}'
expect_error "weight quantizer int8/per_group/sym/minmax is not registered" \
  "$LWQ" quant --model_path "$model" --save_path "$TMP/o1" --config_path "$TMP/minmax_group.yaml"
bad group64.yaml '        weight: {dtype: int8, scope: per_group, symmetric: true, method: gptq, ext: {group_size: 64}}'
expect_error "group_size 64 does not divide in_features 172" \
  "$LWQ" quant --model_path "$model" --save_path "$TMP/o2" --config_path "$TMP/group64.yaml" --max_calib_samples 2
bad w4a8_down.yaml '        act: {dtype: int8, scope: per_token, symmetric: true, method: minmax}
        weight: {dtype: int4, scope: per_channel, symmetric: true, method: minmax}'
expect_error "down_proj: W4A8_DYNAMIC scale_bias" \
  "$LWQ" quant --model_path "$model" --save_path "$TMP/o3" --config_path "$TMP/w4a8_down.yaml"
bad fos_down.yaml '        act: {dtype: mxfp4, scope: per_block, symmetric: true, method: minmax}
        weight: {dtype: mxfp4, scope: per_block, symmetric: true, method: fouroversix}'
expect_error "down_proj: fouroversix quantizes whole MX blocks of 32 inputs, but in_features 172" \
  "$LWQ" quant --model_path "$model" --save_path "$TMP/o4" --config_path "$TMP/fos_down.yaml"
bad dual_down.yaml '        act: {dtype: mxfp4, scope: dual_scale, symmetric: true, method: dualscale, ext: {dual_block_size: 64}}
        weight: {dtype: mxfp4, scope: dual_scale, symmetric: true, method: dualscale, ext: {dual_block_size: 64}}'
expect_error "down_proj: dual_block_size 64 neither covers nor divides in_features 172" \
  "$LWQ" quant --model_path "$model" --save_path "$TMP/o5" --config_path "$TMP/dual_down.yaml"
bad dual_mismatch.yaml '        act: {dtype: mxfp4, scope: dual_scale, symmetric: true, method: dualscale, ext: {dual_block_size: 256}}
        weight: {dtype: mxfp4, scope: dual_scale, symmetric: true, method: dualscale, ext: {dual_block_size: 512}}'
expect_error "act ext.dual_block_size 256 differs from weight ext.dual_block_size 512" \
  "$LWQ" quant --model_path "$model" --save_path "$TMP/o6" --config_path "$TMP/dual_mismatch.yaml"
bad mix_median.yaml '        act: {dtype: int8, scope: pd_mix, symmetric: false, method: minmax, ext: {aggregation_type: median}}
        weight: {dtype: int8, scope: per_channel, symmetric: true, method: minmax}'
expect_error 'act ext.aggregation_type must be "max" or "mean"' \
  "$LWQ" quant --model_path "$model" --save_path "$TMP/o7" --config_path "$TMP/mix_median.yaml"
[ ! -e "$TMP/o5" ] && [ ! -e "$TMP/o6" ] && [ ! -e "$TMP/o7" ] || fail "a refused dual-scale / pd_mix run left an output folder"
[ ! -e "$TMP/o4" ] && [ ! -e "$TMP/o1" ] && [ ! -e "$TMP/o2" ] && [ ! -e "$TMP/o3" ] || fail "a refused run left an output folder"
echo "schemes: ok"
