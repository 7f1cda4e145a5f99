# One image for the gateway, the stream processors and the GPU consumers; docker-compose.yml picks the
# command. Kafka and MongoDB run as their own containers.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY gateway gateway
COPY streams streams
COPY gpu_consumers gpu_consumers
COPY ops ops
RUN pip install .
RUN useradd --create-home storee && mkdir -p /data && chown storee /data
USER storee
ENTRYPOINT ["storee"]
