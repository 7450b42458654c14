#!/usr/bin/env bash
# Installs go-task (the `task` runner for Taskfile.yml) at a pinned version from the Go module
# proxy, into $TASK_BIN_DIR, else $GOBIN, else $(go env GOPATH)/bin. Idempotent: a binary that
# already reports the pinned version is kept. Prints where it is; the last line is its path.
# (Building it takes a few minutes on 2 cores the first time; the Go build cache makes later
# installs quick.)
set -euo pipefail

TASK_VERSION=3.54.0
MODULE=github.com/go-task/task/v3/cmd/task

if ! command -v go >/dev/null 2>&1; then
  echo "setup-task: go not found on PATH: install Go >= 1.24 (Debian package golang-go, or the Go toolchain)" >&2
  exit 1
fi

dir=${TASK_BIN_DIR:-${GOBIN:-}}
if [[ -z $dir ]]; then
  dir="$(go env GOPATH | cut -d: -f1)/bin"
fi
bin="$dir/task"

installed_version() {
  [[ -x $bin ]] || return 1
  "$bin" --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1
}

if [[ "$(installed_version || true)" == "$TASK_VERSION" ]]; then
  echo "setup-task: task $TASK_VERSION already installed" >&2
else
  echo "setup-task: installing task $TASK_VERSION into $dir (go install $MODULE@v$TASK_VERSION)" >&2
  mkdir -p "$dir"
  GOBIN="$dir" go install "$MODULE@v$TASK_VERSION"
  got="$(installed_version || true)"
  if [[ $got != "$TASK_VERSION" ]]; then
    echo "setup-task: $bin reports version '${got:-none}', expected $TASK_VERSION" >&2
    exit 1
  fi
fi

case ":$PATH:" in
  *":$dir:"*) ;;
  *) echo "setup-task: $dir is not on PATH; add it: export PATH=\"$dir:\$PATH\"" >&2 ;;
esac
echo "$bin"
