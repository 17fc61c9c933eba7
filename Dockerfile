# syntax=docker/dockerfile:1
# soundalike: `docker build -t soundalike .` (CPU torch), or for NVIDIA GPUs:
#   docker build -t soundalike:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the chosen index: a bare `torch` would resolve to the multi-GB CUDA build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY core core
COPY ingest ingest
COPY search search
COPY mixes mixes
COPY api api
RUN pip install .

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="soundalike" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --create-home --uid 10001 soundalike \
    && mkdir -p /cache/huggingface /data \
    && chown soundalike:soundalike /cache/huggingface /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface \
    SOUNDALIKE_DATA_DIR=/data \
    SOUNDALIKE_HOST=0.0.0.0 \
    SOUNDALIKE_PORT=8000 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/soundalike
VOLUME ["/cache/huggingface", "/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["soundalike"]
CMD ["serve"]
