#!/usr/bin/env bash
# Test data fetched once and cached: NannyML's synthetic car-loan data set (its CBPE
# example), which ships inside the nannyml wheel. Only the wheel is downloaded, with
# `pip download --no-deps` (nannyml is never installed), checked against a pinned sha256,
# and the three CSVs the CBPE test reads are extracted to
#
#   $DRIFTLINE_CACHE/nannyml-0.13.1/synthetic_car_loan_{reference,analysis,analysis_target}.csv
#
# (DRIFTLINE_CACHE defaults to ~/.cache/driftline). Prints that directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
TAG=testdata
# shellcheck source=lib.sh
source "$here/lib.sh"

NANNYML_VERSION=0.13.1
WHEEL=nannyml-$NANNYML_VERSION-py3-none-any.whl
WHEEL_SHA256=cf5f4a33489834ae6773cb1baa33a0f98c0a3ee6ed9b43049478b25ce22fe869
FILES=(synthetic_car_loan_reference.csv synthetic_car_loan_analysis.csv
       synthetic_car_loan_analysis_target.csv)
CACHE=${DRIFTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline}
OUT=$CACHE/nannyml-$NANNYML_VERSION
PY=${PY:-$repo/${VENV:-.venv}/bin/python}

have_all() { local f; for f in "${FILES[@]}"; do [ -s "$OUT/$f" ] || return 1; done; }

if ! have_all; then
  [ -x "$PY" ] || die "no python at $PY (run 'make install' first)"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.nannyml.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  say "downloading $WHEEL (data only; not installed)"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
    "nannyml==$NANNYML_VERSION" || die "pip download nannyml==$NANNYML_VERSION failed"
  [ -f "$tmp/$WHEEL" ] || die "pip did not produce $WHEEL"
  echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet - \
    || die "$WHEEL: sha256 mismatch (expected $WHEEL_SHA256)"
  "$PY" - "$tmp/$WHEEL" "$tmp/out" "${FILES[@]}" <<'PYEOF'
import sys, zipfile
wheel, out, *names = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        z.extract(f"nannyml/datasets/data/{name}", out)
PYEOF
  mkdir -p "$OUT"
  for f in "${FILES[@]}"; do mv "$tmp/out/nannyml/datasets/data/$f" "$OUT/$f"; done
  say "extracted ${#FILES[@]} CSVs to $OUT"
fi
echo "$OUT"
