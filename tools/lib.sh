# Shared by tools/setup.sh, tools/test.sh and tools/demo.sh (source it; needs REPO and a writable
# $WORK_DIR). Odoo itself is installed by tools/setup.sh when $ODOO_HOME holds none.

ODOO_HOME="${ODOO_HOME:-/opt/odoo}"

say() { printf '[%s] %s\n' "${SCRIPT_NAME:-tools}" "$*" >&2; }

# HAVE_ODOO=1 when $ODOO_HOME holds an Odoo source tree and its Python.
have_odoo() {
    [ -f "$ODOO_HOME/src/odoo-bin" ] && [ -x "$ODOO_HOME/venv/bin/python" ]
}

# Sets PY: Odoo's Python if there is one, else a venv outside the repository.
pick_python() {
    if [ -x "$ODOO_HOME/venv/bin/python" ]; then
        PY="$ODOO_HOME/venv/bin/python"
    else
        local venv="${XDG_CACHE_HOME:-$HOME/.cache}/crm_mail_sync/venv"
        if [ ! -x "$venv/bin/python" ]; then
            say "creating $venv (no Odoo Python at $ODOO_HOME/venv)"
            python3 -m venv "$venv" || { say "cannot create a venv (apt-get install python3-venv?)"; return 1; }
        fi
        PY="$venv/bin/python"
    fi
}

# Installs requirements.txt and requirements-test.txt into $PY, constrained to that Python's current versions of the
# packages Odoo pins, so Odoo's pins never move.
install_requirements() {
    local constraints="$WORK_DIR/constraints.txt"
    "$PY" -m pip freeze --disable-pip-version-check 2>/dev/null \
        | grep -iE '^(cryptography|urllib3|requests|idna|pyopenssl|werkzeug|lxml)==' > "$constraints" || true
    if ! "$PY" -m pip install --disable-pip-version-check -q -r "$REPO/requirements.txt" \
            -r "$REPO/requirements-test.txt" \
            -c "$constraints" > "$WORK_DIR/pip.log" 2>&1; then
        cat "$WORK_DIR/pip.log" >&2
        say "could not install requirements.txt and requirements-test.txt into $PY"
        return 1
    fi
}

apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    export DEBIAN_FRONTEND=noninteractive
    # apt-get update only when the install cannot go ahead without it.
    $sudo apt-get install -y -q "$@" > "$WORK_DIR/apt.log" 2>&1 \
        || { $sudo apt-get update -q >> "$WORK_DIR/apt.log" 2>&1 \
             && $sudo apt-get install -y -q "$@" >> "$WORK_DIR/apt.log" 2>&1; } \
        || { tail -20 "$WORK_DIR/apt.log" >&2; say "apt-get install $* failed"; return 1; }
}

ensure_dovecot() {
    export PATH="$PATH:/usr/sbin"
    if ! command -v dovecot > /dev/null 2>&1; then
        say "installing dovecot-imapd"
        apt_install dovecot-imapd || return 1
    fi
}

ensure_chromium() {
    if ! command -v chromium > /dev/null 2>&1 && ! command -v chromium-browser > /dev/null 2>&1 \
            && ! command -v google-chrome > /dev/null 2>&1; then
        say "installing chromium (Odoo's browser tests)"
        apt_install chromium || return 1
    fi
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

odoo_addons_path() {  # $1: the directory holding the crm_mail_sync link
    local path="$ODOO_HOME/src/odoo/addons"
    [ -d "$ODOO_HOME/src/addons" ] && path="$path,$ODOO_HOME/src/addons"
    echo "$path,$1"
}
