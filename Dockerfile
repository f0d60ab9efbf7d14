# GPU image: CUDA runtime + the project. Build: docker build -t mpnn-qm9 .
# Run:   docker run --gpus all -v $PWD/outputs:/app/outputs mpnn-qm9 target=mu
# (the featurized cache is inside the image; mounting a folder over /app/data would hide it)
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mpnn ./mpnn
COPY hydra_plugins ./hydra_plugins
RUN pip install torch --index-url https://download.pytorch.org/whl/cu128 && pip install -e .
COPY conf ./conf
COPY scripts ./scripts
COPY train.py ./
# Featurize at build time so containers start training at once (offline; about a minute).
RUN python scripts/prepare_data.py
ENTRYPOINT ["python", "train.py"]
CMD ["model=edge_net", "target=mu"]
