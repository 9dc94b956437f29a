#!/bin/sh
# Install the Debian 12 packages qes needs to build and test, skipping those
# already present (idempotent).  Runs apt-get only when something is missing.
set -eu
PKGS="cmake make gcc pkg-config libfftw3-dev libliquid-dev libsqlite3-dev libjansson-dev \
libinih-dev libssl-dev libcriterion-dev sqlite3 python3-jsonschema clang-format \
libpq-dev postgresql libzmq3-dev fiu-utils libfiu-dev \
libiio-dev libiio-utils iiod e2fsprogs util-linux"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi
echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps: not root and no sudo: install these packages by hand:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
