#!/usr/bin/env bash
# Fresh-machine setup: installs what is missing and nothing else; safe to run any number of times.
#   1. Bun 1.4.x from the npm registry        (pinned: bun@1.4.5)
#   2. Zig 0.15.2: a system zig of that version, else PyPI ziglang==0.15.2 (run as python3 -m ziglang)
#   3. bun install (lockfile frozen), then the native library (zig build, ReleaseFast)
#   --test-tools also installs the real clients the integration tests drive, --bench-tools also the
#   peers bench:e2e compares against (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

BUN_VERSION=1.4.5
ZIG_VERSION=0.15.2
say() { printf 'setup: %s\n' "$*"; }

# 1. Bun
bun_version=$(bun --version 2>/dev/null || true)
case "$bun_version" in
  1.4.*) say "bun $bun_version present" ;;
  *)
    say "installing bun@$BUN_VERSION from the npm registry (found: ${bun_version:-none})"
    npm install --global --no-fund --no-audit "bun@$BUN_VERSION"
    if ! command -v bun >/dev/null 2>&1; then
      echo "setup: bun was installed into $(npm prefix --global)/bin, which is not on PATH; add it and rerun" >&2
      exit 1
    fi
    ;;
esac

# 2. Zig
if command -v zig >/dev/null 2>&1 && [ "$(zig version 2>/dev/null)" = "$ZIG_VERSION" ]; then
  say "system zig $ZIG_VERSION present"
elif [ "$(python3 -m ziglang version 2>/dev/null || true)" = "$ZIG_VERSION" ]; then
  say "ziglang $ZIG_VERSION (PyPI) present"
else
  say "installing ziglang==$ZIG_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "ziglang==$ZIG_VERSION" ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "ziglang==$ZIG_VERSION"
fi

# 3. Dependencies and the native library
bun install --frozen-lockfile
bash .ci/zig.sh build
say "native library: $(ls zig-out/lib/libsockpool.*)"

# 4. Real clients and peers, only when asked (Debian packages):
#    --test-tools   curl, proxychains4, iperf3: the integration tests' real clients; prometheus for
#                   promtool (checks /metrics) and the scale-out test's server, chromium (loads the
#                   status page headless), openssl (a throwaway certificate for fetch through HTTP
#                   CONNECT), python3-socks (PySocks, the UDP ASSOCIATE client; checked by import with
#                   the system python3), haproxy (the scale-out and PROXY protocol tests' balancer)
#    --bench-tools  the above, plus dante-server, microsocks, haproxy: bun run bench:e2e's peers
want=()
for flag in "$@"; do
  case "$flag" in
    --test-tools) want+=(curl:curl proxychains4:proxychains4 iperf3:iperf3 promtool:prometheus chromium:chromium openssl:openssl haproxy:haproxy) ;;
    --bench-tools) want+=(curl:curl proxychains4:proxychains4 iperf3:iperf3 danted:dante-server microsocks:microsocks haproxy:haproxy) ;;
    *) echo "setup: unknown option $flag (expected --test-tools or --bench-tools)" >&2; exit 2 ;;
  esac
done
missing=()
for flag in "$@"; do
  # A Python module, not a command: the system python3 must import it (Debian's package).
  if [ "$flag" = --test-tools ] && ! /usr/bin/python3 -c 'import socks' >/dev/null 2>&1; then
    missing+=(python3-socks)
  fi
done
for entry in "${want[@]}"; do
  command="${entry%%:*}" package="${entry##*:}"
  if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command" ]; then
    case " ${missing[*]} " in *" $package "*) ;; *) missing+=("$package") ;; esac
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d 101: packages that ship a daemon (dante-server, haproxy, prometheus) must not start
  # one here.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
say "done"
