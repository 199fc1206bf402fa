#!/usr/bin/env bash
# The project virtualenv: every make target runs driftline, its tests and its tools from
# .venv, installed from the committed lock file. Nothing goes into the system interpreter.
#
#   venv.sh sync          create .venv when missing (from a Python >= 3.11 found on PATH,
#                         installing Debian's pythonX.Y-venv when it lacks venv/ensurepip),
#                         install requirements-lock.txt (hashes checked), driftline editable
#   venv.sh lock          rewrite requirements-lock.txt: the newest versions pyproject.toml's
#                         ranges allow, with hashes (uv pip compile; uv is fetched pinned)
#   venv.sh latest DIR    a throw-away venv in DIR with the newest versions the ranges allow,
#                         ignoring the lock (for `make test-latest`)
#
# DRIFTLINE_PYTHON picks the interpreter; VENV (default <repo>/.venv) the directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
TAG=venv
# shellcheck source=lib.sh
source "$here/lib.sh"

VENV=${VENV:-$repo/.venv}
LOCK=$repo/requirements-lock.txt
UV_VERSION=0.13.9
CACHE=${DRIFTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline}

new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

find_python() { # prints the first Python >= 3.11: DRIFTLINE_PYTHON, then python3.13 .. python3
  local c
  if [ -n "${DRIFTLINE_PYTHON:-}" ]; then
    new_enough "$DRIFTLINE_PYTHON" || die "DRIFTLINE_PYTHON=$DRIFTLINE_PYTHON is not a Python >= 3.11"
    echo "$DRIFTLINE_PYTHON"; return
  fi
  for c in python3.13 python3.12 python3.11 python3; do
    if need_cmd "$c" && new_enough "$c"; then command -v "$c"; return; fi
  done
  die "no Python >= 3.11 found on PATH (set DRIFTLINE_PYTHON=/path/to/python3.11)"
}

make_venv() { # make_venv PYTHON DIR
  local py=$1 dir=$2
  # Debian splits venv/ensurepip into pythonX.Y-venv: look for the module, not at an error text.
  if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
    local xy; xy=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    apt_install "python$xy-venv"
  fi
  say "creating $dir with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$py" -m venv "$dir"
}

sync() {
  [ -f "$LOCK" ] || die "$LOCK is missing; run 'make lock'"
  if [ ! -x "$VENV/bin/python" ] || ! new_enough "$VENV/bin/python"; then
    rm -rf "$VENV"
    make_venv "$(find_python)" "$VENV"
  fi
  say "installing the locked dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r "$LOCK"
  # setuptools and wheel come from the lock too, so the build of driftline itself is pinned.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$repo"
  "$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check >&2; die "installed packages conflict"; }
}

uv_bin() {
  local d=$CACHE/uv-$UV_VERSION
  if [ ! -x "$d/bin/uv" ]; then
    make_venv "$(find_python)" "$d"
    "$d/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  fi
  echo "$d/bin/uv"
}

lock() {
  local uv; uv=$(uv_bin)
  cd "$repo"
  # Build requirements (pyproject's [build-system]) are locked too: installs never fetch
  # an unpinned setuptools.
  printf 'setuptools>=68\nwheel\n' | "$uv" pip compile pyproject.toml - --extra dev \
    --generate-hashes --universal --python-version 3.11 --quiet \
    --custom-compile-command 'make lock' -o "$LOCK"
  say "wrote $LOCK; run 'make test' before committing it"
}

latest() {
  local dir=${1:?usage: venv.sh latest DIR}
  rm -rf "$dir"
  make_venv "$(find_python)" "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade -e "$repo[dev]"
  "$dir/bin/python" -m pip freeze --exclude driftline | sed 's/^/  /' >&2
}

case "${1:-sync}" in
  sync) sync ;;
  lock) lock ;;
  latest) latest "${2:-}" ;;
  *) die "usage: venv.sh sync|lock|latest DIR" ;;
esac
