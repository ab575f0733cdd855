# The visio-relais gateway in a container: the README's install (scripts/install) on
# Debian bookworm, run by an unprivileged user. Mount the dialplan (and its secrets
# file) on /etc/vrgw; call records go to the volume /var/lib/vrgw.
#
#   podman build -t vrgw .
#   podman run --network host -v /srv/vrgw:/etc/vrgw:ro -v vrgw-state:/var/lib/vrgw vrgw
#
# With --network host the gateway binds the host's addresses itself (SIP, H.323, RAS,
# the media relay's UDP range); the published ports below say which they are.
FROM debian:bookworm-slim AS base

RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/vrgw --create-home --shell /usr/sbin/nologin vrgw

# The runtime dependencies named by pyproject.toml, as a file of their own: the "deps"
# stage copies only this file, so a change elsewhere in pyproject.toml (the test
# extras, pytest's or ruff's settings) leaves the dependencies' layers cached.
FROM base AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]["dependencies"]))' > /requirements.txt

# A network that inspects TLS needs its own CA for pip: mount the bundle into the build
# and name it here (podman build -v /etc/ssl/certs/ca-certificates.crt:/run/build-ca.crt
# --build-arg BUILD_CA=/run/build-ca.crt); nothing of it stays in the image.
FROM base AS deps
ARG BUILD_CA=""
WORKDIR /opt/vrgw
# The dependencies in a stage of their own: a change of the sources rebuilds only the
# layers after it, in seconds rather than a minute (measured with
# tests/interop/test_container.py: 75 s on an empty podman, 17 s after a change of
# gateway/ with the "deps" stage kept).
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN if [ -n "$BUILD_CA" ]; then export PIP_CERT="$BUILD_CA"; fi \
 && python3 -m venv .venv \
 && .venv/bin/python -m pip install -q --upgrade pip \
 && .venv/bin/python -m pip install -q -r /tmp/requirements.txt \
 && rm -rf /root/.cache /tmp/requirements.txt

FROM deps
ARG BUILD_CA=""
COPY pyproject.toml README.md ./
COPY scripts/install scripts/install
COPY codecs codecs
COPY dialplans dialplans
COPY gateway gateway
RUN if [ -n "$BUILD_CA" ]; then export PIP_CERT="$BUILD_CA"; fi \
 && scripts/install && .venv/bin/python -m pip uninstall -q -y uv && rm -rf /root/.cache

USER vrgw
ENV XDG_STATE_HOME=/var/lib/vrgw \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/vrgw"]
# SIP (UDP and TCP), H.225.0 call signalling, RAS, the admin API and /metrics, the media
# relay's default port range (dialplan media.port_min..port_max).
EXPOSE 5060/udp 5060/tcp 1720/tcp 1719/udp 8080/tcp 20000-29999/udp
# The health check asks /healthz on the admin port: VRGW_HTTP_PORT, which `vrgw run` also
# takes as its --http-port default (set it, rather than the flag, to move the port).
ENV VRGW_HTTP_PORT=8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/opt/vrgw/.venv/bin/python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ['VRGW_HTTP_PORT']; sys.exit(urllib.request.urlopen(url, timeout=2).status != 200)"]
ENTRYPOINT ["/opt/vrgw/.venv/bin/vrgw", "run"]
CMD ["--dialplan", "/etc/vrgw/dialplan.yaml", "--sip-host", "0.0.0.0"]
