#!/usr/bin/env bash
# Set up huitouke in a local virtualenv and run the main job — the repurchase report — on
# the CDNOW sample bundled in the package. Prints where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e . >&2
mkdir -p out
exec .venv/bin/huitouke report --sample --lang "${HUITOUKE_LANG:-zh}" --out out/report.html
