# `quant`: the msModelSlim-style flags, the output folder contract, and one clear error (non-zero exit, no
# finished-looking folder) for each kind of bad input.
source "$(dirname "$0")/lib.bash"
M="$ROOT/examples/stories260K"
grep -q -- "--config_path" <<< "$("$LWQ" quant --help)" || fail "--help lacks --config_path"
"$LWQ" quant --model_path "$M" --save_path "$TMP/w8a8" --quant_type w8a8 --max_calib_samples 3 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "w8a8 run failed"; }
grep -q "model_quant_type W8A8" "$TMP/log" || fail "no summary line"
grep -q "layer 5/5 .*ETA .*RSS .*peak" "$TMP/log" || fail "no per-layer progress with ETA and RSS"
for f in quant_model_description.json quant_model_weights.safetensors.index.json config.json quant_report.json \
         llama_best_practice.yaml; do
  [ -f "$TMP/w8a8/$f" ] || fail "missing $f"
done
ls "$TMP/w8a8" | grep -q "^quant_model_weights-00001-of-00001.safetensors$" || fail "shard name"
# A config and a quant type together are refused, as in msModelSlim.
expect_error "excludes" "$LWQ" quant --model_path "$M" --save_path "$TMP/x" --quant_type w8a8 \
  --config_path "$ROOT/configs/w8a8.yaml"
# A typo in a YAML value names its path and the allowed values.
sed 's/scope: "per_tensor"/scope: "per_tensr"/' "$ROOT/configs/w8a8.yaml" >"$TMP/typo.yaml"
expect_error "spec.process[1].qconfig.act.scope" "$LWQ" quant --model_path "$M" --save_path "$TMP/typo" \
  --config_path "$TMP/typo.yaml"
[ ! -e "$TMP/typo" ] || fail "a folder was left after a config error"
# Unknown keys are warned about, and the run goes on.
sed 's/^spec:/spec:\n  unknown_knob: 3/' "$ROOT/configs/w8a16.yaml" >"$TMP/unknown.yaml"
"$LWQ" quant --model_path "$M" --save_path "$TMP/unknown" --config_path "$TMP/unknown.yaml" 2>"$TMP/log" \
  || fail "unknown key should only warn"
grep -q "unknown_knob" "$TMP/log" || fail "no warning naming the unknown key"
# Unsupported processors and schemes are refused up front.
sed 's/type: "linear_quant"/type: "awq"/' "$ROOT/configs/w8a8.yaml" >"$TMP/proc.yaml"
expect_error "awq" "$LWQ" quant --model_path "$M" --save_path "$TMP/proc" --config_path "$TMP/proc.yaml"
sed 's/symmetric: True/symmetric: False/' "$ROOT/configs/w8a8_dynamic.yaml" >"$TMP/asym.yaml"
expect_error "per_token" "$LWQ" quant --model_path "$M" --save_path "$TMP/asym" --config_path "$TMP/asym.yaml"
# An existing, non-empty save path needs --overwrite.
expect_error "--overwrite" "$LWQ" quant --model_path "$M" --save_path "$TMP/w8a8" --quant_type w8a16
"$LWQ" quant --model_path "$M" --save_path "$TMP/w8a8" --quant_type w8a16 --overwrite 2>/dev/null || fail "overwrite"
grep -q '"model_quant_type": "W8A16"' "$TMP/w8a8/quant_model_description.json" || fail "not replaced"
# A truncated checkpoint is named, and nothing is left behind.
mkdir "$TMP/broken" && cp "$M"/*.json "$TMP/broken/"
head -c 300000 "$M/model.safetensors" >"$TMP/broken/model.safetensors"
expect_error "model.safetensors" "$LWQ" quant --model_path "$TMP/broken" --save_path "$TMP/out_broken" --quant_type w8a16
[ ! -e "$TMP/out_broken" ] || fail "a folder was left after a bad checkpoint"
# Other bad flags and inputs.
expect_error "True or False" "$LWQ" quant --model_path "$M" --save_path "$TMP/y" --quant_type w8a16 --trust_remote_code Maybe
expect_error "does not exist" "$LWQ" quant --model_path "$TMP/none" --save_path "$TMP/z" --quant_type w8a16
printf '\n' >"$TMP/empty.jsonl"
expect_error "empty.jsonl" "$LWQ" quant --model_path "$M" --save_path "$TMP/e" --quant_type w8a8 --calib_data "$TMP/empty.jsonl"
# A save path that cannot be a folder.
: >"$TMP/a_file"
expect_error "a_file" "$LWQ" quant --model_path "$M" --save_path "$TMP/a_file/out" --quant_type w8a16
expect_error "not a folder" "$LWQ" quant --model_path "$M" --save_path "$TMP/a_file" --quant_type w8a16
# The input is never destroyed: the model folder itself, a folder inside it or above it, with or
# without --overwrite, is refused, and the model is untouched.
mkdir -p "$TMP/models/m" && cp -r "$M"/. "$TMP/models/m/"
before=$(cd "$TMP/models" && find . -type f -exec md5sum {} + | sort | md5sum)
for save in "$TMP/models/m" "$TMP/models/m/out" "$TMP/models" "$TMP/models/m/."; do
  for ow in "" "--overwrite"; do
    expect_error "--save_path" "$LWQ" quant --model_path "$TMP/models/m" --save_path "$save" --quant_type w8a16 $ow
  done
done
ln -s "$TMP/models/m" "$TMP/mlink"
expect_error "--save_path" "$LWQ" quant --model_path "$TMP/models/m" --save_path "$TMP/mlink" --quant_type w8a16 --overwrite
after=$(cd "$TMP/models" && find . -type f -exec md5sum {} + | sort | md5sum)
[ "$before" = "$after" ] || fail "the model folder changed"
# --overwrite replaces only a folder lwquant wrote.
mkdir "$TMP/mine" && echo precious >"$TMP/mine/notes.txt"
expect_error "quant_model_description" "$LWQ" quant --model_path "$M" --save_path "$TMP/mine" --quant_type w8a16 --overwrite
grep -q precious "$TMP/mine/notes.txt" || fail "a foreign folder was touched"
# A config that selects no Linear is an error unless a float copy is asked for.
sed 's/include: \["\*"\]/include: ["*.nothing"]/' "$ROOT/configs/w8a16.yaml" >"$TMP/none.yaml"
grep -q nothing "$TMP/none.yaml" || fail "test setup: include pattern not replaced"
expect_error "quantizes no Linear" "$LWQ" quant --model_path "$M" --save_path "$TMP/none" --config_path "$TMP/none.yaml"
"$LWQ" quant --model_path "$M" --save_path "$TMP/none" --config_path "$TMP/none.yaml" --allow_float_copy 2>/dev/null \
  || fail "--allow_float_copy"
# kill -9 in the middle, then the same command again: it resumes and matches an uninterrupted run.
LWQUANT_TEST_KILL_AT=2:committed "$LWQ" quant --model_path "$M" --save_path "$TMP/resumed" --quant_type w8a8 \
  --max_calib_samples 3 --commit_interval 0 2>/dev/null && fail "the kill hook did not fire"
[ ! -e "$TMP/resumed" ] || fail "a killed run left a finished-looking folder"
"$LWQ" quant --model_path "$M" --save_path "$TMP/resumed" --quant_type w8a8 --max_calib_samples 3 2>"$TMP/log" \
  || { cat "$TMP/log" >&2; fail "resume run failed"; }
grep -q "resuming an interrupted run: 3 of 5 layers" "$TMP/log" || fail "did not resume"
"$LWQ" quant --model_path "$M" --save_path "$TMP/straight" --quant_type w8a8 --max_calib_samples 3 2>/dev/null
diff -r "$TMP/resumed" "$TMP/straight" >/dev/null || fail "the resumed output differs from an uninterrupted run"
echo "quant: ok"
