# The synchronizer service as an image: `docker build -t synchronizer .` (docs/deployment.md).
# Stage 1 builds and packs the npm package exactly as it is published; stage 2 installs that
# tarball and nothing else, and runs it as an unprivileged user.
# The Node.js image both stages start from: Node >= 20.12 with npm, Debian's useradd, node on PATH.
# Override it to build where the Docker Hub is out of reach (scripts/docker-base.sh makes one from
# the Debian mirror): docker build --build-arg NODE_IMAGE=synchronizer-base:node20 .
ARG NODE_IMAGE=node:20-bookworm-slim
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
# prepack builds dist/; the tarball holds what `files` lists.
RUN mkdir /pkg && npm pack --pack-destination /pkg

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    SYNCHRONIZER_CONFIG=/etc/synchronizer/synchronizer.yaml
COPY --from=build /pkg/ /tmp/pkg/
RUN npm install --global --no-audit --no-fund /tmp/pkg/synchronizer-*.tgz \
 && rm -rf /tmp/pkg /root/.npm \
 && groupadd --system synchronizer \
 && useradd --system --gid synchronizer --home-dir /var/lib/synchronizer --shell /usr/sbin/nologin synchronizer \
 && mkdir -p /etc/synchronizer /var/lib/synchronizer \
 && chown synchronizer:synchronizer /var/lib/synchronizer
# An example config (a static topology, the listener on 9464); mount your own over /etc/synchronizer.
COPY deploy/docker/synchronizer.yaml /etc/synchronizer/synchronizer.yaml
COPY docs/examples/demo-topology.yaml /etc/synchronizer/topology.yaml
# State that outlives the container (the baseline, with `state: {dir: /var/lib/synchronizer}`).
VOLUME ["/var/lib/synchronizer"]
WORKDIR /var/lib/synchronizer
USER synchronizer
EXPOSE 9464
# /livez is 200 while the pipeline runs; node's fetch, since the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.SYNCHRONIZER_LIVEZ_URL || 'http://127.0.0.1:9464/livez').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["synchronizer"]
