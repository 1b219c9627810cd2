#!/usr/bin/env bash
# Runs the pinned Zig: a system `zig` of exactly this version, else the PyPI `ziglang` package.
set -euo pipefail
ZIG_VERSION=0.15.2
if command -v zig >/dev/null 2>&1 && [ "$(zig version 2>/dev/null)" = "$ZIG_VERSION" ]; then
  exec zig "$@"
fi
exec python3 -m ziglang "$@"
