# Shell helpers shared by stack.sh and venv.sh (sourced, not run). Set TAG before sourcing
# to prefix messages (default: stack).
TAG=${TAG:-stack}

say() { printf '%s: %s\n' "$TAG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$TAG" "$*" >&2; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() { # alive PIDFILE -> true when the pid in it is a live process (a zombie is not)
  [ -f "$1" ] || return 1
  local state; state=$(ps -o stat= -p "$(cat "$1")" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "${state:0:1}" != Z ]
}

need_cmd() { command -v "$1" >/dev/null 2>&1; }

apt_install() { # apt_install DEBIAN_PACKAGE... (as root, or through sudo)
  need_cmd apt-get || die "missing $* and no apt-get to install them; install them yourself"
  say "installing $* (apt-get)"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

install_packages() { # install_packages CMD:DEBIAN_PACKAGE... (only the missing ones)
  local missing=() pair
  for pair in "$@"; do need_cmd "${pair%%:*}" || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}
