#!/usr/bin/env bash
# The test command of crm_mail_sync:
#     bash tools/test.sh [--only LAYER[,LAYER…]] [--no-LAYER …] [--long]
#
#   "lint":       tools/lint.sh — ruff check, ruff format --check, pylint-odoo (.pylintrc)
#   "engine":     python -m pytest -p no:odoo mailsync/tests   (no Odoo; real Dovecot, Cyrus and
#                 SMTP on loopback; pytest-odoo's plugin "odoo" is off: it needs a database)
#   "odoo":       odoo-bin -i crm_mail_sync --test-tags ${ODOO_TEST_TAGS:-/crm_mail_sync,/crm}
#                 on a fresh database (dropped afterwards), same mail servers; then
#                 "pytest-odoo": pytest --odoo-database=<that database> on
#                 ${PYTEST_ODOO_TESTS:-tests/test_install.py}
#   "packaging":  tools/check_wheel.py — pip wheel with whool (pyproject.toml), the wheel installed
#                 in a throwaway venv beside Odoo, -i crm_mail_sync from the wheel on a fresh
#                 database (checkout not in the addons path) + TestInstall (about 1 min)
#   "setup":      tests/setup/check_fresh_install.py — Odoo installed by tools/setup.sh from an
#                 archive into an empty ODOO_HOME, the one-line failure without a source, and the
#                 demo on that fresh Odoo with synced mail on its leads (a few minutes)
#   "scale":      tests/scale/run.py — SIGKILL at every sync step and at random moments, 200
#                 mailboxes backfilled by 1 vs 2 odoo-bin servers, the addon installed with
#                 models/__init__.py shuffled, an upgrade in place from an earlier version
#                 (own databases and Dovecot; --long: more kills, bigger mailboxes)
#   "screenshots": tests/screenshots/run.py — the demo, then tools/screenshots.py against it
#   "bench":      bench/run.py --quick as a smoke test: correctness only (exit 2 on a message
#                 lost or duplicated), no timing asserted (about 2 minutes)
#   --only engine,odoo runs those layers; --no-scale leaves one out (--engine-only, --odoo-only,
#   --packaging-only, --scale-only, --bench-only are kept as aliases of --only).
#
# Begins with tools/setup.sh: Odoo 18 at ODOO_HOME (default /opt/odoo) installed when missing
# (from Odoo's official source archive or ODOO_SOURCE), Dovecot/Chromium when missing, the
# addon's requirements into Odoo's Python. When no Odoo can be had, says so in one line and runs
# every layer that needs none.
# Prints one summary line per layer, then "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL_LAYERS="lint engine odoo packaging setup scale screenshots bench"
declare -A RUN=()
for layer in $ALL_LAYERS; do RUN[$layer]=1; done
only() {  # keep only the layers named in $1 (comma-separated; pytest-odoo runs with odoo)
    local layer
    [ -n "${1//,/}" ] || { echo "tools/test.sh: --only needs layer names (layers: $ALL_LAYERS)" >&2; exit 2; }
    for layer in $ALL_LAYERS; do RUN[$layer]=0; done
    for layer in ${1//,/ }; do
        [ "$layer" = pytest-odoo ] && layer=odoo
        [ -n "${RUN[$layer]+x}" ] || { echo "tools/test.sh: unknown layer: $layer (layers: $ALL_LAYERS)" >&2; exit 2; }
        RUN[$layer]=1
    done
}
SCALE_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only "${2:-}"; shift ;;
        --only=*) only "${1#--only=}" ;;
        --*-only) only "$(basename "${1#--}" -only)" ;;
        --no-*)
            layer="${1#--no-}"
            [ -n "${RUN[$layer]+x}" ] || { echo "tools/test.sh: unknown layer: $layer (layers: $ALL_LAYERS)" >&2; exit 2; }
            RUN[$layer]=0 ;;
        --long) SCALE_ARGS+=(--long) ;;
        -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "tools/test.sh: unknown option: $1 (use --only LAYER[,LAYER], --no-LAYER, --long; layers: $ALL_LAYERS)" >&2; exit 2 ;;
    esac
    shift
done
RUN_ENGINE=${RUN[engine]} RUN_ODOO=${RUN[odoo]} RUN_BENCH=${RUN[bench]}

SCRIPT_NAME=test.sh
# shellcheck source=tools/lib.sh
. "$REPO/tools/lib.sh"
START_TIME=$(date +%s)

# ---- set-up: Odoo when missing, Debian packages, Python dependencies ----------------------------
SETUP_ARGS=()
needs_odoo=0
for layer in odoo packaging setup scale screenshots bench; do
    [ "${RUN[$layer]}" = 1 ] && needs_odoo=1
done
[ "$needs_odoo" = 1 ] || SETUP_ARGS+=(--no-odoo)  # lint or engine alone: no Odoo needed
SCRIPT_NAME=setup.sh bash "$REPO/tools/setup.sh" ${SETUP_ARGS[@]+"${SETUP_ARGS[@]}"}
setup_rc=$?
[ "$setup_rc" = 0 ] || [ "$setup_rc" = 3 ] || { say "tools/setup.sh failed"; exit 1; }
HAVE_ODOO=0
have_odoo && HAVE_ODOO=1
pick_python || exit 1

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/crm_mail_sync-test.XXXXXX")"
WORK_DIR="$RUN_DIR"
chmod 755 "$RUN_DIR"
DB=""
odoo_pid=""
cleanup() {
    local rc=$?
    if [ -n "$odoo_pid" ] && kill -0 "$odoo_pid" 2>/dev/null; then
        kill "$odoo_pid" 2>/dev/null; wait "$odoo_pid" 2>/dev/null
    fi
    if [ -n "${SERVICES_STARTED:-}" ]; then
        "$PY" "$REPO/tools/services.py" stop --state-dir "$RUN_DIR/services" >/dev/null 2>&1 || true
    fi
    if [ -n "$DB" ]; then
        dropdb --if-exists "$DB" >/dev/null 2>&1 \
            || psql -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\"" >/dev/null 2>&1 || true
    fi
    if [ -n "${KEEP_RUN_DIR:-}" ]; then
        say "logs kept in $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---- one Dovecot, one Cyrus and one SMTP server for the whole run -------------------------------
if ! "$PY" "$REPO/tools/services.py" start --cyrus --state-dir "$RUN_DIR/services" \
        > "$RUN_DIR/services.env"; then
    say "could not start Dovecot/Cyrus/SMTP"
    exit 1
fi
SERVICES_STARTED=1
# shellcheck disable=SC1091
. "$RUN_DIR/services.env"
export MAILSYNC_DOVECOT MAILSYNC_SMTP
[ -n "${MAILSYNC_CYRUS:-}" ] && export MAILSYNC_CYRUS

TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()
FAILED_ANY=0

# A layer that is one script printing "ok …"/"FAIL …" lines and "NAME: N passed, N failed":
#   script_layer NAME NEEDS_ODOO COMMAND…   (its log: $RUN_DIR/NAME.log, .run/NAME.log on failure)
script_layer() {
    local name="$1" needs_odoo="$2"; shift 2
    local upper; upper="$(echo "$name" | tr '[:lower:]' '[:upper:]')"
    if [ "$needs_odoo" = 1 ] && [ "$HAVE_ODOO" != 1 ]; then
        SUMMARY+=("$upper NOT RUN: no Odoo at $ODOO_HOME (tools/setup.sh said why above)")
        return
    fi
    local t0 rc l_passed l_failed log="$RUN_DIR/$name.log"
    t0=$(date +%s)
    say "$name: $* (log: $log)"
    (cd "$REPO" && "$@") > "$log" 2>&1
    rc=$?
    grep -E "^(ok|FAIL) " "$log" || true
    read -r l_passed l_failed < <("$PY" - "$log" "$name" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
m = re.findall(r"^%s: (\d+) passed, (\d+) failed$" % re.escape(sys.argv[2]), text, re.M)
print(*(m[-1] if m else (0, 0)))
EOF
)
    if [ "$rc" != 0 ] && [ "$l_failed" = 0 ]; then
        l_failed=1  # the script itself failed before its summary
    fi
    SUMMARY+=("$name: $l_passed passed, $l_failed failed ($(( $(date +%s) - t0 ))s)")
    TOTAL_PASSED=$((TOTAL_PASSED + l_passed))
    TOTAL_FAILED=$((TOTAL_FAILED + l_failed))
    if [ "$l_failed" != 0 ]; then
        FAILED_ANY=1
        tail -40 "$log"
        mkdir -p "$REPO/.run" && cp "$log" "$REPO/.run/$name.log" && say "full $name log: .run/$name.log"
    fi
    [ "$l_failed" = 0 ]
}

# ---- lint: ruff and pylint-odoo -----------------------------------------------------------------
[ "${RUN[lint]}" = 1 ] && script_layer lint 0 bash tools/lint.sh

# "PASSED FAILED" from pytest's closing line in the log $1.
pytest_counts() {
    "$PY" - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
lines = [l for l in text.splitlines() if re.search(r"\d+ (passed|failed|error)|no tests ran", l)]
last = lines[-1] if lines else ""
count = lambda word: sum(int(n) for n in re.findall(r"(\d+) " + word, last))
print(count("passed"), count("failed") + count(r"errors?"))
EOF
}

# ---- layer 1: the engine ------------------------------------------------------------------------
# -p no:odoo: pytest-odoo (requirements-test.txt) registers its pytest plugin as "odoo"; loaded,
# it imports Odoo and gives every test a session fixture that needs an Odoo database.
if [ "$RUN_ENGINE" = 1 ]; then
    say "engine tests: python -m pytest -p no:odoo mailsync/tests"
    t0=$(date +%s)
    (cd "$REPO" && "$PY" -m pytest mailsync/tests -q -p no:cacheprovider -p no:odoo -rfE) 2>&1 | tee "$RUN_DIR/engine.log"
    engine_rc=${PIPESTATUS[0]}
    read -r e_passed e_failed < <(pytest_counts "$RUN_DIR/engine.log")
    if [ "$engine_rc" != 0 ] && [ "$e_failed" = 0 ]; then
        e_failed=1  # pytest itself failed (collection, usage, internal error)
    fi
    SUMMARY+=("engine: $e_passed passed, $e_failed failed ($(( $(date +%s) - t0 ))s)")
    TOTAL_PASSED=$((TOTAL_PASSED + e_passed))
    TOTAL_FAILED=$((TOTAL_FAILED + e_failed))
    [ "$e_failed" = 0 ] || FAILED_ANY=1
fi

# ---- layer 2: Odoo ------------------------------------------------------------------------------
if [ "$RUN_ODOO" = 1 ]; then
    if [ "$HAVE_ODOO" != 1 ]; then
        SUMMARY+=("ODOO TESTS NOT RUN: no Odoo at $ODOO_HOME (tools/setup.sh said why above)")
    else
        t0=$(date +%s)
        ADDONS="$RUN_DIR/addons"
        mkdir -p "$ADDONS"
        ln -s "$REPO" "$ADDONS/crm_mail_sync"
        DB="crm_mail_sync_test_$(date +%Y%m%d%H%M%S)_$$"
        HTTP_PORT=$(free_port)
        TAGS="${ODOO_TEST_TAGS:-/crm_mail_sync,/crm}"
        ODOO_LOG="$RUN_DIR/odoo.log"
        say "odoo tests: -i crm_mail_sync --test-tags $TAGS on database $DB (log: $ODOO_LOG)"
        "$ODOO_HOME/venv/bin/python" "$ODOO_HOME/src/odoo-bin" \
            --addons-path="$(odoo_addons_path "$ADDONS")" \
            --data-dir="$RUN_DIR/odoo-data" \
            -d "$DB" -i crm_mail_sync --test-tags "$TAGS" \
            --stop-after-init --log-level=test --http-port="$HTTP_PORT" --http-interface=127.0.0.1 \
            --max-cron-threads=0 --workers=0 \
            > "$ODOO_LOG" 2>&1 &
        odoo_pid=$!
        last_report=$(date +%s)
        while kill -0 "$odoo_pid" 2>/dev/null; do
            sleep 5
            if [ $(( $(date +%s) - last_report )) -ge 60 ]; then
                last_report=$(date +%s)
                say "odoo still running ($(( last_report - t0 ))s): $(grep -c ' Starting ' "$ODOO_LOG") tests started, $(grep -cE ' (ERROR|CRITICAL) ' "$ODOO_LOG") error lines"
            fi
        done
        wait "$odoo_pid"
        odoo_rc=$?
        # Verdict: exit code, the test result line, ERROR/CRITICAL lines, warnings from loading.
        read -r o_passed o_failed < <("$PY" "$REPO/tools/odoo_log_check.py" "$ODOO_LOG" "$odoo_rc" \
                                       --report "$RUN_DIR/odoo-problems.txt")
        if [ -s "$RUN_DIR/odoo-problems.txt" ]; then
            cat "$RUN_DIR/odoo-problems.txt"
        fi
        SUMMARY+=("odoo: $o_passed passed, $o_failed failed ($(( $(date +%s) - t0 ))s)")
        TOTAL_PASSED=$((TOTAL_PASSED + o_passed))
        TOTAL_FAILED=$((TOTAL_FAILED + o_failed))
        if [ "$o_failed" != 0 ]; then
            FAILED_ANY=1
            mkdir -p "$REPO/.run" && cp "$ODOO_LOG" "$REPO/.run/odoo-test.log" \
                && say "full Odoo log: .run/odoo-test.log"
        fi

        # ---- layer 3: pytest-odoo on layer 2's database, before the end drops it ------------
        # A developer runs, in a checkout whose directory is named crm_mail_sync, on a database
        # where crm_mail_sync is installed (README: Develop):
        #   PYTHONPATH=<odoo source> <odoo python> -m pytest --odoo-database=<db>
        #       --odoo-config=<odoo.conf> tests/test_install.py
        # Here the test files are named through the link $ADDONS/crm_mail_sync: pytest-odoo
        # imports them as odoo.addons.<directory name>.tests.<file>.
        t0=$(date +%s)
        PYTEST_ODOO_TESTS="${PYTEST_ODOO_TESTS:-tests/test_install.py}"
        printf '[options]\naddons_path = %s\ndata_dir = %s\n' \
            "$(odoo_addons_path "$ADDONS")" "$RUN_DIR/odoo-data" > "$RUN_DIR/pytest-odoo.conf"
        PO_TESTS=()
        for t in $PYTEST_ODOO_TESTS; do PO_TESTS+=("$ADDONS/crm_mail_sync/$t"); done
        module_state=$(psql -X -q -t -A -d "$DB" \
            -c "SELECT state FROM ir_module_module WHERE name = 'crm_mail_sync'" 2>/dev/null)
        if [ "$module_state" != installed ]; then
            # Layer 2 failed to install the addon (and says why): nothing for pytest-odoo to test.
            p_passed=0; p_failed=1
            echo "pytest-odoo: not run: crm_mail_sync is not installed in $DB (${module_state:-no such database or module})" \
                > "$RUN_DIR/pytest-odoo.log"
            cat "$RUN_DIR/pytest-odoo.log"
            po_note=", not run: layer 2 did not install crm_mail_sync"
        else
            say "pytest-odoo: pytest --odoo-database=$DB $PYTEST_ODOO_TESTS (log: $RUN_DIR/pytest-odoo.log)"
            (cd "$RUN_DIR" && PYTHONPATH="$ODOO_HOME/src${PYTHONPATH:+:$PYTHONPATH}" \
                "$ODOO_HOME/venv/bin/python" -m pytest -p no:cacheprovider -q -rfE \
                --odoo-config="$RUN_DIR/pytest-odoo.conf" --odoo-database="$DB" "${PO_TESTS[@]}") \
                > "$RUN_DIR/pytest-odoo.log" 2>&1
            po_rc=$?
            grep -E "^(FAILED|ERROR) |[0-9]+ (passed|failed|errors?)|no tests ran" "$RUN_DIR/pytest-odoo.log" || true
            read -r p_passed p_failed < <(pytest_counts "$RUN_DIR/pytest-odoo.log")
            if [ "$po_rc" != 0 ] && [ "$p_failed" = 0 ]; then
                p_failed=1  # pytest itself failed (plugin, collection, usage, no test run)
            fi
            po_note=""
        fi
        SUMMARY+=("pytest-odoo: $p_passed passed, $p_failed failed ($(( $(date +%s) - t0 ))s$po_note)")
        TOTAL_PASSED=$((TOTAL_PASSED + p_passed))
        TOTAL_FAILED=$((TOTAL_FAILED + p_failed))
        if [ "$p_failed" != 0 ]; then
            FAILED_ANY=1
            tail -40 "$RUN_DIR/pytest-odoo.log"
            mkdir -p "$REPO/.run" && cp "$RUN_DIR/pytest-odoo.log" "$REPO/.run/pytest-odoo.log" \
                && say "full pytest-odoo log: .run/pytest-odoo.log"
        fi
    fi
fi

# ---- packaging: the wheel (whool) installed beside Odoo, installed in a fresh database ----------
if [ "${RUN[packaging]}" = 1 ]; then
    if ! script_layer packaging 1 "$ODOO_HOME/venv/bin/python" tools/check_wheel.py \
            --work-dir "$RUN_DIR"; then
        for f in "$RUN_DIR"/packaging.*/odoo-wheel.log; do
            [ -f "$f" ] && cp "$f" "$REPO/.run/packaging-odoo.log" \
                && say "Odoo log of the install from the wheel: .run/packaging-odoo.log"
        done
    fi
fi

# ---- setup: Odoo installed from an archive into an empty ODOO_HOME, the demo on it ------------
if [ "${RUN[setup]}" = 1 ]; then
    if [ "$HAVE_ODOO" != 1 ]; then
        SUMMARY+=("SETUP CHECK NOT RUN: no Odoo at $ODOO_HOME to build the source archive from (tools/setup.sh said why above)")
    else
        script_layer setup 1 "$ODOO_HOME/venv/bin/python" tests/setup/check_fresh_install.py \
            --json "$RUN_DIR/setup.json"
    fi
fi

# ---- scale: crash, scale-out, shuffled imports, upgrade in place, against real Odoo servers -----
[ "${RUN[scale]}" = 1 ] && script_layer scale 1 "$ODOO_HOME/venv/bin/python" tests/scale/run.py \
    ${SCALE_ARGS[@]+"${SCALE_ARGS[@]}"} --json "$RUN_DIR/scale.json"

# ---- screenshots: the demo, then tools/screenshots.py against it ---------------------------------
[ "${RUN[screenshots]}" = 1 ] && script_layer screenshots 1 "$ODOO_HOME/venv/bin/python" tests/screenshots/run.py

# ---- layer 6: the benchmark's --quick mode as a smoke test (correctness only, no timing) --------
# bench/run.py exits 2 when any mailbox ends with a message lost, duplicated or on the wrong lead.
if [ "$RUN_BENCH" = 1 ]; then
    if [ "$HAVE_ODOO" != 1 ]; then
        SUMMARY+=("BENCH SMOKE NOT RUN: no Odoo at $ODOO_HOME (tools/setup.sh said why above)")
    else
        t0=$(date +%s)
        say "bench smoke: bench/run.py --quick --skip arrival (log: $RUN_DIR/bench.log)"
        (cd "$REPO" && "$ODOO_HOME/venv/bin/python" bench/run.py --quick --skip arrival \
            --json "$RUN_DIR/bench.json") > "$RUN_DIR/bench.log" 2>&1
        bench_rc=$?
        grep -E "^gate " "$RUN_DIR/bench.log" || true
        if [ "$bench_rc" = 0 ]; then
            SUMMARY+=("bench: 1 passed, 0 failed ($(( $(date +%s) - t0 ))s)")
            TOTAL_PASSED=$((TOTAL_PASSED + 1))
        else
            tail -30 "$RUN_DIR/bench.log"
            SUMMARY+=("bench: 0 passed, 1 failed ($(( $(date +%s) - t0 ))s, exit $bench_rc)")
            TOTAL_FAILED=$((TOTAL_FAILED + 1))
            FAILED_ANY=1
            mkdir -p "$REPO/.run" && cp "$RUN_DIR/bench.log" "$REPO/.run/bench-smoke.log" \
                && say "full bench log: .run/bench-smoke.log"
        fi
    fi
fi

echo
for line in "${SUMMARY[@]}"; do
    echo "$line"
done
say "total time $(( $(date +%s) - START_TIME ))s"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$FAILED_ANY" = 0 ] && [ "$TOTAL_FAILED" = 0 ]
