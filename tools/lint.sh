#!/usr/bin/env bash
# The lint of crm_mail_sync:   bash tools/lint.sh
#   ruff check (pyproject.toml: errors, style, bugbear), ruff format --check, and pylint with the
#   OCA's Odoo checks (pylint-odoo, .pylintrc). Installs ruff and pylint-odoo into a venv of its
#   own (${XDG_CACHE_HOME:-~/.cache}/crm_mail_sync/lint) the first time.
# Prints "lint: N passed, N failed" (one check each); exits non-zero when a check fails.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/crm_mail_sync/lint"
say() { printf '[lint.sh] %s\n' "$*" >&2; }
if [ ! -x "$VENV/bin/pylint" ] || [ ! -x "$VENV/bin/ruff" ]; then
    say "installing ruff and pylint-odoo into $VENV"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check \
        "ruff==0.17.6" "pylint-odoo==10.0.12" > /dev/null \
        || { say "could not install ruff and pylint-odoo"; exit 1; }
fi
passed=0 failed=0
check() {  # name, command...
    local name="$1"; shift
    if "$@"; then passed=$((passed + 1)); echo "ok $name"
    else failed=$((failed + 1)); echo "FAIL $name"; fi
}
cd "$REPO" || exit 1
check "ruff check" "$VENV/bin/ruff" check --no-cache --quiet .
check "ruff format" "$VENV/bin/ruff" format --no-cache --check --quiet .
# pylint-odoo reads the addon by its technical name: a folder crm_mail_sync holding this checkout.
LINK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/crm_mail_sync-lint.XXXXXX")"
trap 'rm -rf "$LINK_DIR"' EXIT
ln -s "$REPO" "$LINK_DIR/crm_mail_sync"
check "pylint-odoo" bash -c "cd '$LINK_DIR' && '$VENV/bin/pylint' --rcfile='$REPO/.pylintrc' crm_mail_sync"
echo "lint: $passed passed, $failed failed"
[ "$failed" = 0 ]
