#!/usr/bin/env bash
# Set up huitouke in a local virtualenv and run the main job — the repurchase report — on
# the CDNOW sample bundled in the package. Prints where the report is.
#
# The install runs only when needed: on a fresh machine, or when pyproject.toml (the
# dependencies and entry points) changed since the last install. The package is installed
# in editable mode, so a change to the code itself needs no reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
STAMP=.venv/.huitouke-install
WANT="$(.venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' pyproject.toml)"
if [ ! -x .venv/bin/huitouke ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e . >&2
    printf '%s\n' "$WANT" > "$STAMP"
fi
mkdir -p out
exec .venv/bin/huitouke report --sample --lang "${HUITOUKE_LANG:-zh}" --out out/report.html
