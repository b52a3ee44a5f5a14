"""Prompt-lookup decoding on the CPU generator, against plain decoding, in one run.

A grounded answer copies most of its words from the units it was shown, so the next
tokens are often the tokens that followed the same words in the prompt. llama.cpp's
prompt-lookup decoding (llama-cpp-python's `LlamaPromptLookupDecoding`, the server's
`--draft_model prompt-lookup-decoding`) proposes those as a draft that the model checks
in one batch: several tokens per forward pass when the draft holds, one when it does
not, and greedy decoding's output unchanged either way.

The prompts are the product's own (`AnswerService.unit_messages` after retrieval, for
answerable questions of eval/corpora_questions.jsonl that no lookup answers), with the
product's JSON schema. For each setting the packaged model is served by the same
`llama_cpp.server` command the product uses (app/llm/local_server.py), the prompts are
sent in the same order, and per request wall time, completion tokens and the answer are
recorded; the report gives p50/p95, tokens/s, the ratio to plain decoding and whether
each answer is identical to the plain one.

    MEDCITE_DATA_DIR=data .venv/bin/python -m bench.draft_decoding --questions 8 \\
        --drafts 0 4 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def capture(n: int) -> list[tuple[str, list[dict[str, str]], dict[str, Any], int]]:
    """(question id, messages, JSON schema, max_tokens) for the first `n` answerable
    questions that go to the model."""
    from app.core.container import build_services
    from app.core.settings import Settings
    from app.evaluation.answers.runner import WHO, _request
    from app.evaluation.datasets import load_corpora_questions

    settings = Settings(LLM_BASE_URL="http://127.0.0.1:9/v1")
    services = build_services(settings)
    out = []
    for q in load_corpora_questions():
        if len(out) == n:
            break
        if not q.answerable:
            continue
        draft, early = services.answers.prepare(_request(q), WHO)
        if early is not None or services.answers.looked_up(draft) is not None:
            continue
        messages, schema = services.answers.unit_messages(draft)
        out.append((q.qid, messages, schema, settings.llm_max_tokens))
    return out


def _post(url: str, body: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return dict(json.loads(r.read()))


def _wait(url: str, proc: subprocess.Popen[bytes], wait_s: float = 180) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("llama.cpp server did not start")


def serve_and_ask(draft: int, prompts: list[tuple[str, list[dict[str, str]], dict[str, Any],
                                                  int]], port: int) -> list[dict[str, Any]]:
    from app.core.settings import Settings
    from app.llm.client import response_format
    from app.llm.local_server import PACKAGED_MODELS, ensure_gguf, server_command, stop_server

    settings = Settings()
    gguf = ensure_gguf(PACKAGED_MODELS[settings.local_llm], settings.models_dir)
    cmd = server_command(gguf, settings, port=port, alias="local")
    if draft:
        cmd += ["--draft_model", "prompt-lookup-decoding",
                "--draft_model_num_pred_tokens", str(draft)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(url, proc)
            # The fixed instructions once, as a running server has them cached.
            _post(url + "/v1/chat/completions", {"model": "local", "max_tokens": 1,
                                                 "messages": prompts[0][1][:1]})
            rows = []
            for qid, messages, schema, max_tokens in prompts:
                body = {"model": "local", "messages": messages, "temperature": 0.0,
                        "max_tokens": max_tokens,
                        "response_format": response_format("json_object", schema, "answer")}
                t = time.perf_counter()
                out = _post(url + "/v1/chat/completions", body)
                wall = time.perf_counter() - t
                rows.append({"qid": qid, "wall_s": wall,
                             "tokens": out["usage"]["completion_tokens"],
                             "prompt_tokens": out["usage"]["prompt_tokens"],
                             "text": out["choices"][0]["message"]["content"]})
            return rows
        finally:
            stop_server(proc)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--drafts", type=int, nargs="+", default=[0, 10],
                        help="draft lengths to compare; 0 is plain decoding (the baseline)")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prompts = capture(args.questions)
    runs = {d: serve_and_ask(d, prompts, args.port) for d in args.drafts}
    base = runs[args.drafts[0]]
    print(f"{len(prompts)} prompts (the product's own, after retrieval); machine: "
          f"{os.cpu_count()} cores")
    print("| draft tokens | p50 s | p95 s | mean completion tokens | tokens/s (sum) | "
          "p50 ratio to baseline | answers identical to baseline |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for d, rows in runs.items():
        walls = [r["wall_s"] for r in rows]
        same = sum(r["text"] == b["text"] for r, b in zip(rows, base, strict=True))
        tps = sum(r["tokens"] for r in rows) / sum(walls)
        ratio = statistics.median(walls) / statistics.median([b["wall_s"] for b in base])
        print(f"| {d or 'none (baseline)'} | {statistics.median(walls):.1f} | "
              f"{_p95(walls):.1f} | {statistics.mean(r['tokens'] for r in rows):.0f} | "
              f"{tps:.1f} | {ratio:.2f} | {same}/{len(rows)} |")
    if args.json:
        args.json.write_text(json.dumps({str(d): rows for d, rows in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
