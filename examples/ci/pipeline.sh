#!/usr/bin/env bash
# Train → save → register → validate against production → promote to staging → request production.
#
# The same commands a person runs, so CI proves nothing a human could not reproduce. Environment:
#   MODELPORT_DB_URL, MODELPORT_ARTIFACTS_URL  the shared registry (e.g. PostgreSQL + an object store)
#   MODELPORT_API_KEY                           the CI user's key (role data_scientist; never an approver)
#   MODEL (default churn), OUT (default build/ci)
# Exit status: 0 when the production request is open (or applied); 1 when a validation gate failed,
# in which case nothing was promoted.
set -euo pipefail

MODEL="${MODEL:-churn}"
OUT="${OUT:-build/ci}"
COMMIT="${GITHUB_SHA:-$(git rev-parse --short HEAD 2>/dev/null || echo local)}"
HERE="$(cd "$(dirname "$0")" && pwd)"

rm -rf "$OUT"
mkdir -p "$OUT"

echo "::group::train and save"
python "$HERE/train.py" --name "$MODEL" --out "$OUT"
echo "::endgroup::"

echo "::group::register"
modelport models register "$OUT/bundle" --reason "CI build $COMMIT" --json > "$OUT/registered.json"
VERSION="$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$OUT/registered.json")"
echo "registered $MODEL:$VERSION"
echo "::endgroup::"

echo "::group::validate against production"
# Exit status 1 when a gate fails; the report is stored in the registry either way.
if ! modelport validate "$MODEL:$VERSION" --holdout "$OUT/holdout.csv" --target target \
    --against production --reason "CI build $COMMIT" --json > "$OUT/validation.json"; then
  python - "$OUT/validation.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for gate in report["gates"]:
    print(f"  {gate['name']:<10} {gate['status']:<15} {gate['message']}")
PY
  echo "A validation gate failed: $MODEL:$VERSION is not promoted." >&2
  exit 1
fi
echo "::endgroup::"

echo "::group::promote to staging"
modelport promote "$MODEL" "$VERSION" --to staging --reason "CI build $COMMIT: gates passed"
echo "::endgroup::"

echo "::group::request production"
modelport promote "$MODEL" "$VERSION" --to production --reason "CI build $COMMIT: gates passed" \
  --json > "$OUT/promotion.json"
python - "$OUT/promotion.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
if result["moved"]:
    print(f"{result['name']}@{result['alias']} now points at version {result['version']}.")
else:
    request = result["request"]
    print(f"Promotion request {request['id']} is open; it waits for:")
    for blocker in result["blockers"]:
        print(f"  - {blocker}")
    print(f"An approver (not the CI user) runs: modelport approve {request['id']} --reason '...'")
PY
echo "::endgroup::"
