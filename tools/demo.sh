#!/usr/bin/env bash
# The demo of crm_mail_sync:   bash tools/demo.sh [--reset]
#
# Starts a local Dovecot + SMTP server (mail kept under
# ${XDG_STATE_HOME:-~/.local/state}/crm_mail_sync/demo), creates the database crm_mail_sync_demo
# (crm_mail_sync + Odoo's demo data) if missing, seeds a demo mailbox with a realistic
# conversation with the crm demo contacts, connects it for admin, then runs Odoo on
# http://127.0.0.1:${DEMO_HTTP_PORT:-8069} (login admin / admin) until Ctrl-C.
#   --reset   drop the demo database and mailbox first
# Begins with tools/setup.sh: installs Odoo 18 at $ODOO_HOME (default /opt/odoo) when missing,
# from Odoo's official source archive or ODOO_SOURCE (a URL, an archive or a directory).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT_NAME=demo.sh
# shellcheck source=tools/lib.sh
. "$REPO/tools/lib.sh"

RESET=0
for arg in "$@"; do
    case "$arg" in
        --reset) RESET=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) say "unknown option: $arg"; exit 2 ;;
    esac
done

SCRIPT_NAME=setup.sh bash "$REPO/tools/setup.sh" --need-odoo || exit 1

DB="${DEMO_DB:-crm_mail_sync_demo}"
STATE="${XDG_STATE_HOME:-$HOME/.local/state}/crm_mail_sync/demo"
HTTP_PORT="${DEMO_HTTP_PORT:-8069}"
export DEMO_IMAP_HOST=127.0.0.1 DEMO_SMTP_HOST=127.0.0.1
export DEMO_IMAP_PORT="${DEMO_IMAP_PORT:-10143}" DEMO_IMAPS_PORT="${DEMO_IMAPS_PORT:-10993}"
export DEMO_SMTP_PORT="${DEMO_SMTP_PORT:-10025}" DEMO_SMTPS_PORT="${DEMO_SMTPS_PORT:-10465}"
export DEMO_MAIL_LOGIN="${DEMO_MAIL_LOGIN:-demo.rep@example.test}"
export DEMO_MAIL_PASSWORD="${DEMO_MAIL_PASSWORD:-demo-password}"
export ODOO_HOME

pick_python || exit 1
ODOO_PY="$ODOO_HOME/venv/bin/python"
ODOO_BIN="$ODOO_HOME/src/odoo-bin"

if [ "$RESET" = 1 ]; then
    say "--reset: dropping database $DB and the demo mailbox"
    "$PY" "$REPO/tools/services.py" stop --state-dir "$STATE/run" >/dev/null 2>&1 || true
    dropdb --if-exists "$DB" || exit 1
    rm -rf "$STATE"
fi
mkdir -p "$STATE/logs" "$STATE/addons"
WORK_DIR="$STATE/logs"
ln -sfn "$REPO" "$STATE/addons/crm_mail_sync"
ADDONS_PATH="$(odoo_addons_path "$STATE/addons")"
ODOO_ARGS=(--addons-path="$ADDONS_PATH" --data-dir="$STATE/odoo-data" -d "$DB" --db-filter="^$DB\$")


# ---- mail servers (fixed ports, so the mailbox configured in the database stays valid) ---------
SERVICES_ENV="$STATE/logs/services.env"
if ! "$PY" "$REPO/tools/services.py" start --state-dir "$STATE/run" --workdir "$STATE/servers" \
        --imap-port "$DEMO_IMAP_PORT" --imaps-port "$DEMO_IMAPS_PORT" \
        --smtp-port "$DEMO_SMTP_PORT" --smtps-port "$DEMO_SMTPS_PORT" > "$SERVICES_ENV"; then
    say "could not start Dovecot/SMTP (ports $DEMO_IMAP_PORT/$DEMO_IMAPS_PORT/$DEMO_SMTP_PORT/$DEMO_SMTPS_PORT busy? set DEMO_*_PORT)"
    exit 1
fi
stop_services() {
    "$PY" "$REPO/tools/services.py" stop --state-dir "$STATE/run" >/dev/null 2>&1 || true
}
trap stop_services EXIT
trap 'exit 130' INT TERM
# shellcheck disable=SC1090
. "$SERVICES_ENV"
export MAILSYNC_DOVECOT MAILSYNC_SMTP

"$PY" "$REPO/tools/demo_mailbox.py" || { say "could not seed the demo mailbox"; exit 1; }

# ---- database -----------------------------------------------------------------------------------
if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    say "creating database $DB with crm_mail_sync and demo data (a few minutes; log: $STATE/logs/install.log)"
    if ! "$ODOO_PY" "$ODOO_BIN" "${ODOO_ARGS[@]}" -i crm_mail_sync --stop-after-init \
            --http-port="$(free_port)" --max-cron-threads=0 > "$STATE/logs/install.log" 2>&1; then
        tail -40 "$STATE/logs/install.log" >&2
        say "installing crm_mail_sync failed"
        dropdb --if-exists "$DB"
        exit 1
    fi
fi

# ---- connect admin's mailbox (tools/demo_seed.py, inside odoo-bin shell) -------------------------
"$ODOO_PY" "$ODOO_BIN" shell "${ODOO_ARGS[@]}" --no-http --max-cron-threads=0 \
    < "$REPO/tools/demo_seed.py" > "$STATE/logs/seed.log" 2>&1 \
    || { tail -30 "$STATE/logs/seed.log" >&2; say "demo_seed.py failed (Odoo still starts)"; }
grep '^demo_seed:' "$STATE/logs/seed.log" >&2 || true

cat <<EOF

  crm_mail_sync demo
  ------------------
  Odoo:     http://127.0.0.1:$HTTP_PORT   (login: admin   password: admin)
  Database: $DB
  Mailbox:  $DEMO_MAIL_LOGIN / $DEMO_MAIL_PASSWORD
            IMAP 127.0.0.1:$DEMO_IMAP_PORT (plain/STARTTLS), $DEMO_IMAPS_PORT (TLS)
            SMTP 127.0.0.1:$DEMO_SMTP_PORT (plain/STARTTLS), $DEMO_SMTPS_PORT (TLS)
  State:    $STATE
  Stop with Ctrl-C (stops the mail servers too). Start over: bash tools/demo.sh --reset

EOF
# Odoo in a session of its own: a Ctrl-C (SIGINT to the whole process group) reaches this script
# alone, which passes ONE SIGTERM on; Odoo forces its shutdown at a second signal.
setsid "$ODOO_PY" "$ODOO_BIN" "${ODOO_ARGS[@]}" --http-port="$HTTP_PORT" &
ODOO_PID=$!
trap 'kill -TERM "$ODOO_PID" 2>/dev/null' INT TERM HUP
rc=0
wait "$ODOO_PID" || rc=$?
while kill -0 "$ODOO_PID" 2>/dev/null; do  # interrupted: let Odoo finish its shutdown
    wait "$ODOO_PID" || rc=$?
done
exit "$rc"
