"""llama.cpp builds side by side: the installed one (baseline) against others, in one run.

The prebuilt llama-cpp-python wheel is compiled for AVX2 only (`-DGGML_NATIVE=OFF`,
because llama.cpp's native build crashed on this CPU in its AMX code). Prompt processing
is half of every CPU answer's time, and it is matrix products of int8 activations with
4-bit weights: AVX-512 with VNNI does those dot products 64 bytes at a time instead of 32.
This bench serves the packaged model with each build (the product's `llama_cpp.server`
command and thread settings; a build is a folder holding another compiled `llama_cpp`
package, put first on the server's PYTHONPATH), sends the product's own prompts
(bench/draft_decoding.py's capture), and reports time to first token, decode tokens/s and
wall time, idle and beside a competing CPU load (bench/llm_threads.py's).

    pip install --no-deps --target /tmp/ll512 llama_cpp_python-...whl   # an AVX-512 build
    MEDCITE_DATA_DIR=data .venv/bin/python -m bench.llm_build --questions 6 \\
        --build avx512=/tmp/ll512 --load 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.draft_decoding import capture  # noqa: E402
from bench.llm_threads import Setting, print_table, run  # noqa: E402


def _product_setting() -> Setting:
    cores = os.cpu_count() or 2
    return Setting(threads=max(1, cores - 1), batch_threads=cores, spincount=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                        help="a folder with another compiled llama_cpp package")
    parser.add_argument("--load", type=int, nargs="+", default=[0, 1],
                        help="competing single-threaded CPU processes per row")
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    builds: list[tuple[str, dict[str, str]]] = [("installed (baseline)", {})]
    for spec in args.build:
        name, _, folder = spec.partition("=")
        if not (Path(folder) / "llama_cpp").is_dir():
            raise SystemExit(f"{folder}: no llama_cpp package there")
        path = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p)
        builds.append((name, {"PYTHONPATH": path}))
    prompts = capture(args.questions)
    setting = _product_setting()
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for load in args.load:
        for name, env in builds:
            results[(name, load)] = run(setting, load, prompts, args.port, env_extra=env)
    print(f"{len(prompts)} prompts (the product's own, after retrieval), "
          f"{statistics.mean(len(json.dumps(p[1])) for p in prompts):.0f} chars each on "
          f"average; {setting.label()}; machine: {os.cpu_count()} cores")
    print_table("build", results, builds[0][0])
    if args.json:
        args.json.write_text(json.dumps(
            {f"{name} load {load}": rows for (name, load), rows in results.items()},
            indent=1))


if __name__ == "__main__":
    main()
