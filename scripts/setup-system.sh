#!/usr/bin/env bash
# System packages the tests use that npm cannot bring: curl and tmux for end-to-end
# tests, golang-go for the hashicorp/yamux interop suite, Chromium for the web inspector test, nginx-light and openssh-server for the
# benchmark's anchor rows (bench/README.md: one C reverse-proxy hop, and `ssh -R`), pebble for the ACME tests, redis-server for the relay cluster tests, libmodsecurity3 and modsecurity-crs for the OWASP CRS actions. Installed with apt when missing; when that
# is not possible the tests that need them are skipped (and say so), so a failed install
# warns instead of failing the run.
set -uo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v tmux >/dev/null || need+=(tmux)
command -v chromium >/dev/null || need+=(chromium)
# Both live in /usr/sbin, which is not on every user's PATH.
{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null || need+=(nginx-light)
{ command -v sshd || [ -x /usr/sbin/sshd ]; } >/dev/null || need+=(openssh-server)
# redis-server: the shared state of the relay cluster tests (each test starts its own, on a free port;
# the package's system service is not used and not started).
command -v redis-server >/dev/null || need+=(redis-server)
# pebble and pebble-challtestsrv: the ACME CA and its DNS for the relay's certificate tests.
{ command -v pebble && command -v pebble-challtestsrv; } >/dev/null || need+=(pebble)
# ModSecurity v3 and the OWASP Core Rule Set: what the owasp-crs-request/-response actions run.
{ [ -e /usr/lib/x86_64-linux-gnu/libmodsecurity.so.3 ] || [ -e /usr/lib/aarch64-linux-gnu/libmodsecurity.so.3 ]; } || need+=(libmodsecurity3)
[ -d /usr/share/modsecurity-crs/rules ] || need+=(modsecurity-crs)
# Go builds the hashicorp/yamux peer of the mux interop suite (test/interop/go, vendored).
command -v go >/dev/null || need+=(golang-go)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; then
    # Tests run their own redis-server; the package's service (where systemd starts one) is not wanted.
    if [[ " ${need[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
    exit 0
  fi
fi
echo "warning: could not install ${need[*]}; the tests that need them will be skipped" >&2
