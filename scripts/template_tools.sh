#!/usr/bin/env bash
# Create the venvs that tests/template uses: .venv-tools (sam, cfn-lint) and .venv-checkov (checkov).
# Idempotent: a venv whose stamp matches its requirements file is left alone; otherwise it is rebuilt.
# Both install at once (about 1.5 minutes on a fresh machine). Paths follow SML_TOOLS_VENV/SML_CHECKOV_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

make_venv() {  # make_venv DIR REQUIREMENTS
    local dir=$1 requirements=$2
    if [[ -f "$dir/.installed" ]] && cmp -s "$requirements" "$dir/.installed"; then
        return 0
    fi
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$dir/.installed"
    echo "$dir: installed $(grep -v '^#' "$requirements" | xargs)"
}

make_venv "${SML_TOOLS_VENV:-.venv-tools}" scripts/requirements-tools.txt &
tools=$!
make_venv "${SML_CHECKOV_VENV:-.venv-checkov}" scripts/requirements-checkov.txt &
checkov=$!
wait "$tools"
wait "$checkov"
