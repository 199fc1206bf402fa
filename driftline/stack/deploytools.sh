#!/usr/bin/env bash
# The tools that check the deployment files, installed once and cached (like the Kafka jars):
#
#   helm                 built from source through the Go module proxy (`go install`; about
#                        3.5 minutes on 2 cores with an empty Go cache), cached in
#                        $DRIFTLINE_CACHE/helm-$HELM_VERSION
#   kubernetes-validate  from PyPI at the exact versions of deploy-tools.txt, in a cached
#                        virtualenv $DRIFTLINE_CACHE/kubernetes-validate-<hash>
#
# Both are linked into <repo>/.tools/bin (gitignored), where the tests look for them.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
TAG=deploy-tools
# shellcheck source=lib.sh
source "$here/lib.sh"

HELM_VERSION=${HELM_VERSION:-v3.19.0}
CACHE=${DRIFTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline}
BIN=$repo/.tools/bin
mkdir -p "$BIN" "$CACHE"
# one build at a time: `make test` starts one in the background, `integration` waits here
exec 9>"$CACHE/.deploytools.lock"
flock 9

helm_tool() {
  local d=$CACHE/helm-$HELM_VERSION
  if [ ! -x "$d/helm" ]; then
    need_cmd go || apt_install golang-go
    say "building helm $HELM_VERSION from the Go module proxy into $d (a few minutes, once)"
    local started=$SECONDS k8s="" p
    # what the release Makefile sets: the Kubernetes version helm assumes (client-go 1.34)
    for p in pkg/lint/rules pkg/chartutil; do
      k8s+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=34"
    done
    GOBIN=$d GOFLAGS=-buildvcs=false go install \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION $k8s" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$CACHE/helm-build.log" 2>&1 \
      || { tail -n 20 "$CACHE/helm-build.log" >&2; die "go install helm failed (log: $CACHE/helm-build.log)"; }
    say "helm built in $((SECONDS - started))s"
  fi
  ln -sf "$d/helm" "$BIN/helm"
}

validate_tool() {
  local sum; sum=$(sha256sum "$here/deploy-tools.txt" | cut -c1-12)
  local d=$CACHE/kubernetes-validate-$sum
  if [ ! -x "$d/bin/kubernetes-validate" ]; then
    local py=python3
    need_cmd "$py" || die "python3 is needed for kubernetes-validate"
    say "installing kubernetes-validate into $d"
    rm -rf "$d"
    "$py" -m venv "$d"
    "$d/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
      -r "$here/deploy-tools.txt" || die "pip install kubernetes-validate failed"
  fi
  ln -sf "$d/bin/kubernetes-validate" "$BIN/kubernetes-validate"
}

helm_tool
validate_tool
"$BIN/helm" version --short >/dev/null
