# Helpers for the command-line checks. Each check is run by ctest as
#   bash tests/cli/<check>.sh <path to lwquant> <repo root>
set -euo pipefail
LWQ="$1"
ROOT="$2"
SHARED="$ROOT/../shared"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error <substring> <command...>: the command must exit non-zero and
# print the substring on stderr.
expect_error() {
  local want="$1"; shift
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure of: $*"
  [ "$rc" -lt 128 ] || fail "crashed with status $rc: $*"
  grep -qF -- "$want" "$TMP/err" || { cat "$TMP/err" >&2; fail "stderr lacks '$want' for: $*"; }
}
