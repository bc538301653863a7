#!/usr/bin/env bash
# Install scim2-server (python-scim, https://pypi.org/project/scim2-server/),
# the independent SCIM 2.0 server the interop tests provision against beside
# devkit's own test server, into a virtual environment (devkit `scim2`).
#
# Idempotent: pip runs only when the venv's scim2-server is missing or
# deploy/scim2-server/requirements.txt (exact pins of it and every
# dependency) differs from the copy kept in the venv at the last install.
# Then the venv is rebuilt from scratch, so no unpinned leftover survives.
# Prints one line saying what it did.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$REPO/deploy/scim2-server/requirements.txt"
# devkit looks in the same place (SCIM2_VENV, else target/scim2-server/venv).
VENV="${SCIM2_VENV:-$REPO/target/scim2-server/venv}"
# The copy of the requirements the venv was last built from.
STAMP="$VENV/scim2-server-requirements.txt"

die() {
    printf 'scim2-server: %s\n' "$*" >&2
    exit 1
}

# Debian splits venv support (ensurepip) into python3-venv. Install it (and
# python3) only as root with apt-get; otherwise say what is missing.
ensure_python_venv() {
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return
    fi
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        printf 'scim2-server: installing python3 and python3-venv with apt-get\n' >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
        return
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        die "python3 is missing: install Python 3.10 or later (Debian: apt-get install -y python3 python3-venv)"
    fi
    die "python3 cannot create virtual environments (python3 -m venv): install its venv module (Debian: apt-get install -y python3-venv)"
}

[[ -f $REQUIREMENTS ]] || die "$REQUIREMENTS is missing"

if [[ -x $VENV/bin/scim2-server ]] && [[ -f $STAMP ]] && cmp -s "$REQUIREMENTS" "$STAMP"; then
    echo "scim2-server: up to date in $VENV"
    exit 0
fi

what="installed" why=""
if [[ -x $VENV/bin/scim2-server ]]; then
    what="reinstalled" why=" (requirements changed)"
fi

ensure_python_venv
mkdir -p "$(dirname "$VENV")"
# --clear: a fresh venv each time, so a changed pin leaves nothing behind.
python3 -m venv --clear "$VENV" >&2 || die "python3 -m venv $VENV failed"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$REQUIREMENTS" >&2 ||
    die "pip install -r $REQUIREMENTS failed (needs PyPI, or a PIP_INDEX_URL mirror)"
[[ -x $VENV/bin/scim2-server ]] || die "pip ran but $VENV/bin/scim2-server is missing"
# Written last: an interrupted install is retried next time.
cp "$REQUIREMENTS" "$STAMP"
version="$(sed -n 's/^scim2-server==//p' "$REQUIREMENTS")"
echo "scim2-server: $what ${version:-?} in $VENV$why"
