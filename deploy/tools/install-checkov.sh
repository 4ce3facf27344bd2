#!/usr/bin/env bash
# Installs checkov into its own virtual environment (default .venv-tools/ at the repo root),
# apart from .venv, whose pinned packages checkov's dependency tree would fight with.
# Idempotent: does nothing when the pinned version is already there.
# Usage: deploy/tools/install-checkov.sh [VENV_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.venv-tools}"
python="${PYTHON:-python3}"
req="$here/checkov-requirements.txt"
stamp="$venv/.checkov-installed"

if [[ -f "$stamp" && "$stamp" -nt "$req" && -x "$venv/bin/checkov" ]]; then
  exit 0
fi
test -x "$venv/bin/python" || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
touch "$stamp"
echo "checkov $("$venv/bin/checkov" --version) installed in $venv"
