# nsr-search results service. The same steps as `make setup` (README): Python, a virtual
# environment, pip with setuptools<81 (NNI 3.0 imports pkg_resources), then `pip install -e .`.
# Python 3.11 by default, the version CI runs the full suite on; 3.12 and 3.13 work too
# (requires-python, `make check-python`): docker-compose build --build-arg PYTHON_VERSION=3.13
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY trials/ trials/
COPY storage/ storage/
COPY service/ service/
COPY advisors/ advisors/
COPY search_spaces/ search_spaces/

RUN python -m venv .venv \
 && .venv/bin/python -m pip install --quiet --upgrade pip \
 && .venv/bin/python -m pip install --quiet "setuptools<81" wheel \
 && .venv/bin/python -m pip install --quiet -e . \
 && useradd --system --uid 10001 --home-dir /app nsr

USER nsr
# Inside the container the service must listen on all interfaces to be reachable through the
# published port; docker-compose.yml publishes it on the host's 127.0.0.1 only.
ENV NSR_HOST=0.0.0.0 NSR_PORT=8765 NSR_NNI_DIR=/nni-experiments
EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
    CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8765/api/health', timeout=2)"
# `serve` migrates the database (Alembic) before it starts listening.
CMD ["python", "-m", "service", "serve"]
