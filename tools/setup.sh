#!/usr/bin/env bash
# The set-up step shared by tools/demo.sh and tools/test.sh (also runnable alone):
#     bash tools/setup.sh [--no-odoo | --need-odoo]
#
# Checks what is there and installs what is missing:
#   1. Odoo 18 at $ODOO_HOME (default /opt/odoo) when it holds none: the source unpacked into
#      $ODOO_HOME/src, a venv at $ODOO_HOME/venv with Odoo's own requirements.txt.
#      The source is Odoo's official nightly archive
#          https://nightly.odoo.com/18.0/nightly/src/odoo_18.0.latest.tar.gz
#      or ODOO_SOURCE: a URL, a local archive (.tar.gz, .tar.xz, .zip) or a directory holding
#      an Odoo 18 source tree.
#   2. Debian packages: Dovecot (the test and demo mail server), Chromium (Odoo's browser tests),
#      and the build libraries Odoo's requirements need.
#   3. The addon's Python dependencies (requirements.txt, requirements-test.txt) into Odoo's
#      Python, without moving any version Odoo pinned.
#   --no-odoo    skip step 1 (the engine alone needs no Odoo)
#   --need-odoo  stop at once (exit 3) when no Odoo can be had (the demo)
# Exit codes: 0 ready; 3 no Odoo could be had (one line says why and how to provide it; the
# rest of the set-up was still done); 1 anything else failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT_NAME="${SCRIPT_NAME:-setup.sh}"
# shellcheck source=tools/lib.sh
. "$REPO/tools/lib.sh"

ODOO_OFFICIAL_SOURCE="https://nightly.odoo.com/18.0/nightly/src/odoo_18.0.latest.tar.gz"
WANT_ODOO=1
NEED_ODOO=0
for arg in "$@"; do
    case "$arg" in
        --no-odoo) WANT_ODOO=0 ;;
        --need-odoo) NEED_ODOO=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) say "unknown option: $arg"; exit 2 ;;
    esac
done

SETUP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/crm_mail_sync-setup.XXXXXX")"
WORK_DIR="$SETUP_DIR"
trap 'rm -rf "$SETUP_DIR"' EXIT

ODOO_BUILD_PACKAGES=(build-essential python3-dev python3-venv libldap2-dev libsasl2-dev libpq-dev
                     libxml2-dev libxslt1-dev libjpeg-dev zlib1g-dev)

# Puts the Odoo source named by $1 (URL, archive or directory) at $ODOO_HOME/src.
fetch_odoo_source() {
    local source="$1" archive tree top
    case "$source" in
        http://*|https://*)
            archive="$SETUP_DIR/odoo-source"
            say "downloading Odoo 18 from $source"
            # The first answer must come quickly: offline, this fails in seconds, not minutes.
            if ! curl -fsSL --connect-timeout 15 -o "$archive" "$source" 2> "$SETUP_DIR/curl.log"; then
                echo "NO ODOO: $ODOO_HOME holds no Odoo and $source cannot be downloaded ($(tail -1 "$SETUP_DIR/curl.log")); set ODOO_SOURCE to an Odoo 18 source archive or directory, or ODOO_HOME to an installed Odoo (README: Install in your Odoo)" >&2
                return 3
            fi ;;
        *)
            if [ ! -e "$source" ]; then
                echo "NO ODOO: ODOO_SOURCE=$source does not exist; set it to an Odoo 18 source archive, directory or URL" >&2
                return 3
            fi
            archive="$source" ;;
    esac
    tree="$SETUP_DIR/tree"
    mkdir -p "$tree"
    if [ -d "$archive" ]; then
        cp -a "$archive/." "$tree/" || return 1
    else
        case "$archive" in
            *.zip) "$(command -v python3)" -m zipfile -e "$archive" "$tree" ;;
            *) tar -xf "$archive" -C "$tree" ;;
        esac || { echo "NO ODOO: $source is not a readable archive" >&2; return 3; }
    fi
    top="$(find "$tree" -maxdepth 3 -path '*/odoo/release.py' -print -quit)"
    if [ -z "$top" ]; then
        echo "NO ODOO: $source holds no Odoo source tree (no odoo/release.py)" >&2
        return 3
    fi
    top="$(dirname "$(dirname "$top")")"
    if ! grep -q "^version_info = (18, 0" "$top/odoo/release.py"; then
        echo "NO ODOO: $source is not Odoo 18 ($(grep '^version_info' "$top/odoo/release.py"))" >&2
        return 3
    fi
    if ! mkdir -p "$ODOO_HOME" 2>/dev/null || [ ! -w "$ODOO_HOME" ]; then
        echo "NO ODOO: cannot write $ODOO_HOME; set ODOO_HOME to a directory you may write, or install Odoo there as its owner (README: Install in your Odoo)" >&2
        return 3
    fi
    rm -rf "$ODOO_HOME/src.new"
    mv "$top" "$ODOO_HOME/src.new" || return 1
    if [ ! -f "$ODOO_HOME/src.new/odoo-bin" ]; then
        # The official archive ships the launcher as setup/odoo.
        if [ -f "$ODOO_HOME/src.new/setup/odoo" ]; then
            cp "$ODOO_HOME/src.new/setup/odoo" "$ODOO_HOME/src.new/odoo-bin"
        else
            printf '#!/usr/bin/env python3\nimport odoo\n\nif __name__ == "__main__":\n    odoo.cli.main()\n' \
                > "$ODOO_HOME/src.new/odoo-bin"
        fi
    fi
    rm -rf "$ODOO_HOME/src"
    mv "$ODOO_HOME/src.new" "$ODOO_HOME/src"
}

# A venv at $ODOO_HOME/venv with Odoo's requirements.txt (removed again when that fails, so a
# half-built venv never passes for an installed Odoo).
build_odoo_venv() {
    local venv="$ODOO_HOME/venv" build_constraints="$SETUP_DIR/build-constraints.txt"
    say "building $venv from Odoo's requirements.txt (several minutes the first time)"
    rm -rf "$venv"
    python3 -m venv "$venv" || { say "cannot create a venv (apt-get install python3-venv?)"; return 1; }
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -U pip wheel \
            > "$SETUP_DIR/pip.log" 2>&1; then
        tail -20 "$SETUP_DIR/pip.log" >&2; rm -rf "$venv"; return 1
    fi
    # Odoo pins cbor2 5.4.2, whose source build fails with setuptools 70 and later.
    echo "setuptools<70" > "$build_constraints"
    local args=(-r "$ODOO_HOME/src/requirements.txt")
    if "$venv/bin/python" -m pip install --help 2>/dev/null | grep -q -- --build-constraint; then
        args+=(--build-constraint "$build_constraints")
    fi
    if ! PIP_CONSTRAINT="$build_constraints" "$venv/bin/python" -m pip install \
            --disable-pip-version-check -q "${args[@]}" >> "$SETUP_DIR/pip.log" 2>&1; then
        tail -30 "$SETUP_DIR/pip.log" >&2
        rm -rf "$venv"
        say "could not install Odoo's requirements.txt into $venv"
        return 1
    fi
}

ensure_odoo() {
    have_odoo && return 0
    local source="${ODOO_SOURCE:-$ODOO_OFFICIAL_SOURCE}" rc t0
    t0=$(date +%s)
    if [ -f "$ODOO_HOME/src/odoo-bin" ]; then
        # A source tree is there (a developer's checkout, or a venv build that failed): keep it,
        # build the missing venv only. Only a tree this script unpacked is ever replaced.
        say "Odoo source at $ODOO_HOME/src without its venv: building the venv"
    else
        say "no Odoo at $ODOO_HOME: installing Odoo 18 from ${source}"
        fetch_odoo_source "$source" || return $?
    fi
    if ! apt_install "${ODOO_BUILD_PACKAGES[@]}"; then
        echo "NO ODOO: the build libraries Odoo's requirements need could not be installed (apt-get install ${ODOO_BUILD_PACKAGES[*]}, as root)" >&2
        return 3
    fi
    build_odoo_venv || return 1
    have_odoo || { say "Odoo was unpacked but $ODOO_HOME/src/odoo-bin or its Python is missing"; return 1; }
    "$ODOO_HOME/venv/bin/python" "$ODOO_HOME/src/odoo-bin" --version >&2 || return 1
    say "Odoo 18 installed at $ODOO_HOME in $(( $(date +%s) - t0 ))s"
}

odoo_rc=0
if [ "$WANT_ODOO" = 1 ]; then
    ensure_odoo
    odoo_rc=$?
    [ "$odoo_rc" = 0 ] || [ "$odoo_rc" = 3 ] || exit 1
    [ "$odoo_rc" = 3 ] && [ "$NEED_ODOO" = 1 ] && exit 3
fi
ensure_dovecot || exit 1
if have_odoo; then
    ensure_chromium || exit 1
fi
pick_python || exit 1
install_requirements || exit 1
exit "$odoo_rc"
