# billing-sync: one image for every role (the command picks the role: see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# tini as PID 1: SIGTERM reaches billing-sync (which drains before it exits) and zombies are reaped.
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin billing

# The dependencies in their own layer, from the lock file with hashes: a code change does not
# reinstall them, and every build gets the same versions (regenerate: README, "Deployment").
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock

COPY . /tmp/src
RUN pip install --no-deps /tmp/src && rm -rf /tmp/src

# A writable data directory for the embedded defaults (SQLite under ./var) and nothing else.
RUN mkdir -p /data && chown billing:billing /data
WORKDIR /data
USER 10001:10001

# The ingress answers on 8080; the other roles on BILLING_METRICS_PORT (compose sets 9100 and
# overrides this per role). /readyz: the database and the broker answer.
ENV BILLING_HEALTHCHECK_URL=http://127.0.0.1:8080/readyz
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(os.environ['BILLING_HEALTHCHECK_URL'], timeout=4)"]

EXPOSE 8080 9100
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["billing-sync", "up", "--host", "0.0.0.0"]
