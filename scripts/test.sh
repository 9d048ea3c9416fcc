#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian packages for the real services,
# npm packages), then runs every test in shuffled order with coverage (per-folder floors in
# vitest.config.ts). With CI=true it runs the suite three times in a row, each with its own printed
# seed, so CI shows that no test depends on another's order. Rerun one order with
# `npx vitest run --sequence.shuffle --sequence.seed=SEED`. The tests start their own services on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# collectd-core's write_http needs libyajl2 (a Recommends, not a Depends); zabbix_sender comes with
# zabbix-agent (Debian's zabbix-sender is only a virtual package, which dpkg-query never reports installed).
# docker.io and debootstrap: the Dockerfile test starts a private dockerd when none answers, and
# makes its Node.js base image from the Debian mirror (scripts/docker-base.sh). e2fsprogs: chattr, with
# which the fold test makes baseline.mdb unwritable.
for pkg in rabbitmq-server prometheus-alertmanager nagios4 nagios4-cgi apache2 prometheus chromium collectd-core libyajl2 \
  zabbix-server-pgsql zabbix-frontend-php php-cli php-pgsql postgresql zabbix-agent openssl docker.io debootstrap e2fsprogs; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # The services are started by the tests themselves (private, loopback only), never by the package.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
npm run typecheck
# One build for every run below (the CLI tests run the built CLI).
npm run build --silent
export SYNC_TEST_BUILT=1

runs=1
[ "${CI:-}" = "true" ] && runs=3
seeds=()
for run in $(seq 1 "$runs"); do
  seed=$(( (RANDOM << 15 | RANDOM) + run ))
  seeds+=("$seed")
  echo "test run $run of $runs: shuffled with seed $seed"
  # Coverage once (its floors are checked then); the other runs only prove the order does not matter.
  coverage=(); [ "$run" -eq 1 ] && coverage=(--coverage)
  npx vitest run --sequence.shuffle --sequence.seed="$seed" "${coverage[@]}"
done
echo "all $runs run(s) passed; seeds: ${seeds[*]}"
