# `ppl` ends stdout with "ppl: <value>" after the token count; stories260K is ~3.5 on TinyStories text.
source "$(dirname "$0")/lib.bash"
"$LWQ" ppl --model "$ROOT/examples/stories260K" --text "$ROOT/tests/data/text/tinystories_sample.txt" --ctx 512 >"$TMP/out" 2>"$TMP/err"
last=$(tail -n 1 "$TMP/out")
[[ "$last" =~ ^ppl:\ ([0-9.]+)$ ]] || fail "last line is '$last'"
value="${BASH_REMATCH[1]}"
awk -v v="$value" 'BEGIN { exit !(v > 3.0 && v < 4.5) }' || fail "implausible perplexity $value"
grep -q "^tokens: " "$TMP/out" || fail "no token count"
echo "ppl: ok ($value)"
