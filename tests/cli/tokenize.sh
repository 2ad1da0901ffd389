# `tokenize` prints the ids without special tokens, space-separated, on one line.
source "$(dirname "$0")/lib.bash"
out=$("$LWQ" tokenize --tokenizer "$ROOT/examples/stories260K" --text "Once upon a time")
[ "$out" = "403 407 261 378" ] || fail "stories260K ids: '$out'"
if [ -f "$SHARED/tokenizers/qwen3/tokenizer.json" ]; then
  out=$("$LWQ" tokenize --tokenizer "$SHARED/tokenizers/qwen3/tokenizer.json" --text "Hello, my dog is cute")
  [ "$out" = "9707 11 847 5562 374 18838" ] || fail "qwen3 ids: '$out'"
fi
echo '{"model": ' >"$TMP/tokenizer.json"
expect_error "tokenizer.json" "$LWQ" tokenize --tokenizer "$TMP/tokenizer.json" --text "x"
echo "tokenize: ok"
