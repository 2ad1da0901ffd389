# `generate` prints exactly the prompt and the greedy text: llama2.c's reference output for stories260K.
source "$(dirname "$0")/lib.bash"
"$LWQ" generate --model "$ROOT/examples/stories260K" --prompt "" --max-new-tokens 200 >"$TMP/out" 2>"$TMP/err"
cmp "$TMP/out" "$ROOT/examples/stories260K/reference/greedy_200.txt" || { diff "$TMP/out" "$ROOT/examples/stories260K/reference/greedy_200.txt" | head; fail "greedy text differs from llama2.c"; }
# With a prompt, stdout starts with the prompt itself.
"$LWQ" generate --model "$ROOT/examples/stories260K" --prompt "Once upon a time" --max-new-tokens 10 >"$TMP/out2" 2>/dev/null
head -c 16 "$TMP/out2" | grep -qx "Once upon a time" || fail "prompt not echoed: $(cat "$TMP/out2")"
expect_error "does not exist" "$LWQ" generate --model "$TMP/nope" --prompt "" --max-new-tokens 1
echo "generate: ok"
