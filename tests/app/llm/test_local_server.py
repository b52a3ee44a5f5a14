"""The embedded generator's command, which the product and the generator benchmarks share."""

from __future__ import annotations

import os
from pathlib import Path

from app.core.settings import Settings
from app.llm.local_server import server_command, unused_cpu_features


def _arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_decoding_leaves_a_core_free_and_the_prompt_uses_them_all() -> None:
    settings = Settings(MEDCITE_LOCAL_LLM_THREADS=0)
    cmd = server_command(Path("m.gguf"), settings, port=8123)
    cores = os.cpu_count() or 2
    assert cmd[1:3] == ["-m", "llama_cpp.server"] and _arg(cmd, "--model") == "m.gguf"
    assert _arg(cmd, "--n_threads") == str(max(1, cores - 1))
    assert _arg(cmd, "--n_threads_batch") == str(cores)
    assert _arg(cmd, "--port") == "8123" and _arg(cmd, "--model_alias") == settings.llm_model
    assert "--cache" not in cmd  # its RAM prompt cache grew the server past 20 GB


def test_a_set_thread_count_and_a_benchmarks_own_settings_win() -> None:
    fixed = server_command(Path("m.gguf"), Settings(MEDCITE_LOCAL_LLM_THREADS=3), port=1)
    assert _arg(fixed, "--n_threads") == _arg(fixed, "--n_threads_batch") == "3"
    bench = server_command(Path("m.gguf"), Settings(MEDCITE_LOCAL_LLM_THREADS=3), port=1,
                           alias="local", threads=2, batch_threads=1)
    assert (_arg(bench, "--n_threads"), _arg(bench, "--n_threads_batch")) == ("2", "1")
    assert _arg(bench, "--model_alias") == "local"


AVX2_ONLY = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
             "BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
AVX512 = ("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | "
          "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | REPACK = 1 |")


def test_a_build_below_the_cpu_is_named_and_a_matching_one_is_not() -> None:
    zen4 = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
    assert unused_cpu_features(AVX2_ONLY, zen4) == ["AVX512", "AVX512_VNNI"]
    assert unused_cpu_features(AVX512, zen4) == []
    # A CPU without AVX-512 loses nothing with the AVX2 wheel.
    assert unused_cpu_features(AVX2_ONLY, {"avx2", "fma"}) == []
    # "= 0" is not built in.
    assert unused_cpu_features(AVX512.replace("AVX512_VNNI = 1", "AVX512_VNNI = 0"),
                               zen4) == ["AVX512_VNNI"]
