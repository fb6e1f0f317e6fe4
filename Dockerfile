# CPU image: the embedded default model, offline. Build: docker build -t autoimprove .
# Run the service (a round every 6 h): docker run -d -v $PWD/ws:/ws autoimprove run \
#   --policy policies/quickstart.yaml --workspace /ws
# `docker stop -t 900` lets the step in flight reach its next safe point (SIGTERM, exit 0); a
# plain `docker stop` kills it after 10 s, which is also safe: the next start resumes the round.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true \
    AUTOIMPROVE_CACHE=/opt/autoimprove-cache
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The CPU torch wheel first: an unpinned torch would pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY autoimprove ./autoimprove
COPY policies ./policies
COPY seeds ./seeds
RUN pip install .
# Convert the embedded model once at build time so containers start ready.
RUN python -c "from autoimprove.embedded import embedded_model_dir; print(embedded_model_dir())"
ENTRYPOINT ["autoimprove"]
CMD ["--help"]
