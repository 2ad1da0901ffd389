# `ppl` ends stdout with "ppl: <value>" after "tokens: <n>". Scoring each of the 5 TinyStories stories as its own
# document (BOS first) reproduces the reference of examples/stories260K/README.md (numpy forward, sentencepiece):
# 1,804 tokens, perplexity 3.548.
source "$(dirname "$0")/lib.bash"
text="$ROOT/tests/data/text/tinystories_sample.txt"
"$LWQ" ppl --model "$ROOT/examples/stories260K" --text "$text" >"$TMP/out" 2>"$TMP/err"
[[ "$(tail -n 1 "$TMP/out")" =~ ^ppl:\ [0-9.]+$ ]] || fail "last line is '$(tail -n 1 "$TMP/out")'"
grep -q "^tokens: [0-9]*$" "$TMP/out" || fail "no token count line"
# Split on the separator, strip surrounding whitespace, score each story.
awk -v dir="$TMP" 'BEGIN { RS = "<\\|endoftext\\|>" } { gsub(/^[ \t\r\n]+|[ \t\r\n]+$/, ""); if (length($0)) { n++; printf "%s", $0 > (dir "/story" n ".txt") } }' "$text"
total_tokens=0; total_nll=0
for story in "$TMP"/story*.txt; do
  "$LWQ" ppl --model "$ROOT/examples/stories260K" --text "$story" >"$TMP/s" 2>/dev/null
  tokens=$(sed -n 's/^tokens: //p' "$TMP/s"); ppl=$(sed -n 's/^ppl: //p' "$TMP/s")
  total_tokens=$((total_tokens + tokens))
  total_nll=$(awk -v a="$total_nll" -v t="$tokens" -v p="$ppl" 'BEGIN { printf "%.10f", a + t * log(p) }')
done
[ "$total_tokens" -eq 1804 ] || fail "scored $total_tokens tokens, reference 1804"
ppl=$(awk -v a="$total_nll" -v n="$total_tokens" 'BEGIN { printf "%.3f", exp(a / n) }')
[ "$ppl" = "3.548" ] || fail "perplexity $ppl, reference 3.548"
expect_error "does not exist" "$LWQ" ppl --model "$TMP/none" --text "$text"
echo "ppl: ok ($ppl over $total_tokens tokens)"
