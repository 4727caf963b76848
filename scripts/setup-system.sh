#!/usr/bin/env bash
# System packages the tests need that npm cannot bring: curl and tmux for end-to-end
# tests, Chromium for the web inspector test. Skipped when already present.
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v tmux >/dev/null || need+=(tmux)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  fi
fi
