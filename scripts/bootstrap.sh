#!/usr/bin/env bash
# Creates .venv in the checkout and installs what the studio needs from requirements.lock (every package pinned,
# with its hashes); a second run with the same lock and torch returns at once (a stamp file records what was
# installed, so a new lock or TORCH_SPEC installs again).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# torch goes first and outside the lock: by default the release requirements.txt names (the CPU wheel where pip
# finds one); on a GPU host, a CUDA build of it:
#   TORCH_SPEC=torch==2.13.0+cu128 PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu128 make venv
TORCH_SPEC=${TORCH_SPEC:-$(grep -m1 '^torch==' requirements.txt)}

# The lock is made from requirements.txt (`make lock`); installing a stale one would quietly miss a change.
made_from=$(sed -n 's/^# made from requirements.txt sha256 //p' requirements.lock)
if [ "$made_from" != "$(sha256sum requirements.txt | cut -d' ' -f1)" ]; then
  echo "requirements.txt changed after requirements.lock was made: run \`make lock\` (docs/development.md)" >&2
  exit 1
fi

stamp=.venv/.installed
want=$( (cat requirements.lock; echo "$TORCH_SPEC") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "Creating .venv ..." >&2
  rm -rf .venv
  "$PYTHON" -m venv .venv || {
    echo "Could not create a virtual environment; on Debian/Ubuntu: apt-get install python3-venv" >&2
    rm -rf .venv; exit 1; }
fi
echo "Installing requirements.lock into .venv (first run only; a few minutes) ..." >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
echo "$want" > "$stamp"
