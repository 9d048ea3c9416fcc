#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian packages for the real services,
# npm packages), then runs every test. The tests start their own services on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in rabbitmq-server prometheus-alertmanager nagios4 nagios4-cgi apache2 prometheus chromium; do
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
npm test
