#!/usr/bin/env bash
# Makes a Node.js base image for the Dockerfile without a container registry:
#
#   scripts/docker-base.sh [TAG]          (default synchronizer-base:node20)
#   docker build --build-arg NODE_IMAGE=synchronizer-base:node20 -t synchronizer .
#
# A minimal Debian bookworm from the Debian mirror (debootstrap, as root), this machine's node and
# npm (Node >= 20.12, as the package's engines ask), and this machine's CA bundle: npm in the image
# then reaches the registry exactly as npm on the host does (through a TLS-inspecting proxy too).
# The root filesystem is kept as a tarball (SYNCHRONIZER_BASE_CACHE, default
# /var/tmp/synchronizer-base-<node version>.tar) and imported into the daemon DOCKER_HOST names.
set -euo pipefail

tag="${1:-synchronizer-base:node20}"
node_bin="$(command -v node)"
version="$("$node_bin" -p 'process.versions.node')"
if ! "$node_bin" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=12)?0:1)'; then
  echo "docker-base: node $version is older than 20.12 (the package's engines)" >&2
  exit 1
fi
npm_dir="$(npm root -g)/npm"
[ -f "$npm_dir/bin/npm-cli.js" ] || { echo "docker-base: npm not found at $npm_dir" >&2; exit 1; }
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "docker-base: no CA bundle at $ca (Debian's ca-certificates)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "docker-base: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "docker-base: debootstrap needs root" >&2; exit 1; }

cache="${SYNCHRONIZER_BASE_CACHE:-/var/tmp/synchronizer-base-$version.tar}"
# One maker at a time; a second waits and finds the tarball made.
exec 9>"$cache.lock"
flock 9
if [ ! -s "$cache" ]; then
  root="$(mktemp -d /var/tmp/synchronizer-base.XXXXXX)"
  trap 'rm -rf "$root"' EXIT
  echo "docker-base: debootstrap bookworm (minbase) into $root" >&2
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    exit 1
  }
  rm -f "$root.log"
  # Where the official node images keep them: npm's global prefix is then /usr/local.
  install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || install -D -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
  # Not needed in an image, and large.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man
  tar -C "$root" -cf "$cache.part" .
  mv "$cache.part" "$cache"
fi
docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt" \
  -c 'CMD ["node"]' \
  "$cache" "$tag" >/dev/null
echo "docker-base: $tag (node $version, Debian bookworm)" >&2
