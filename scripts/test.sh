#!/usr/bin/env bash
# Set up everything the test suite needs and run it whole: lint (ruff), types (mypy), layer
# rules (import-linter contracts in pyproject.toml), tests
# (pytest: unit, SQLite and PostgreSQL integration, end-to-end CLI/HTTP/browser).
# PostgreSQL tests read HUITOUKE_TEST_POSTGRES_URL; without it they skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,spark]'

# System packages for the end-to-end tests: Debian's headless Chromium (the report and
# dashboard are tested in a real browser), a CJK font (charts and PDF inserts show Chinese),
# poppler (PDF pages rendered to images) and a Java runtime (the Spark engine's parity
# tests run PySpark in a local JVM).
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)
command -v pdftoppm >/dev/null || need+=(poppler-utils)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${need[*]} (apt)" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
        echo "warning: ${need[*]} missing and cannot be installed here; browser/PDF/Spark tests will skip" >&2
    fi
fi

echo "== ruff" >&2
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy" >&2
.venv/bin/mypy
echo "== import contracts" >&2
.venv/bin/lint-imports
echo "== pytest" >&2
# The tests wait on real servers, SMTP, PostgreSQL and Chromium far more than they compute:
# HUITOUKE_TEST_WORKERS pytest-xdist workers (4 by default, on any core count); the Spark tests
# share one worker and its one SparkSession (tests/conftest.py). HUITOUKE_TEST_WORKERS=0 runs
# everything in this one process.
exec .venv/bin/pytest -n "${HUITOUKE_TEST_WORKERS:-4}" --dist loadgroup "$@"
