"""Ingest throughput: medcite's pipeline against a plain LlamaIndex IngestionPipeline +
VectorStoreIndex, same files, same embedding model, same embedded Qdrant, same run.

Each (system, corpus) pair runs in its own process, so peak memory (ru_maxrss) is that
system's alone and no model or cache is shared between them.

    .venv/bin/python -m bench.ingest                       # shipped corpora and ×10
    .venv/bin/python -m bench.ingest --only formularies coverage --scale 10
    .venv/bin/python -m bench.ingest --systems medcite     # skip the baseline

The ×N corpus is N renamed copies of every file (renamed so each copy is its own
document; the parse, chunk and embed work per copy is the real one).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

SKIP_DIRS = ("fhir",)  # patient bundles are context for /ask, never indexed


def build_corpus(dest: Path, scale: int, only: list[str] | None) -> Path:
    """The shipped corpora (or the named top-level folders of it), copied `scale` times
    with renamed files, plus a manifest that types them like the shipped one."""
    from ingest.manifest import discover

    src = REPO / "corpora"
    sources = [s for s in discover(src) if s.doc_type.value != "patient"]
    if only:
        sources = [s for s in sources if s.relpath.split("/")[0] in only]
    lines = []
    for copy in range(scale):
        for s in sources:
            rel = Path(s.relpath)
            name = rel.name if scale == 1 else f"{rel.stem}-c{copy}{rel.suffix}"
            target = dest / rel.parent / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(s.path, target)
            groups = ", ".join(f'"{g}"' for g in s.access_groups)
            entry = [f'[[sources]]\nglob = "{(rel.parent / name).as_posix()}"',
                     f'doc_type = "{s.doc_type.value}"', f"access_groups = [{groups}]"]
            if s.payer:
                entry.append(f'payer = "{s.payer}"')
            if s.effective_date:
                entry.append(f'effective_date = "{s.effective_date}"')
            lines.append("\n".join(entry) + "\n")
    # plans.json is read beside the CMS drug lists, not ingested.
    plans = src / "formularies" / "cms-qhp" / "plans.json"
    if (dest / "formularies" / "cms-qhp").exists():
        shutil.copy(plans, dest / "formularies" / "cms-qhp" / "plans.json")
    (dest / "manifest.toml").write_text("\n".join(lines))
    return dest


def files_of(corpus: Path) -> list[Path]:
    from ingest.manifest import discover

    return [s.path for s in discover(corpus)]


def run_medcite(corpus: Path, data: Path) -> dict[str, float]:
    from app.core.settings import Settings
    from ingest.pipeline import ingest_path

    settings = Settings(MEDCITE_DATA_DIR=data, MEDCITE_COLLECTION="bench_ingest")
    report = ingest_path(corpus, settings, progress=False)
    ok = [r for r in report.results if r.status == "ingested"]
    return {"documents": len(ok), "chunks": report.chunks_written,
            "failed": len(report.failed)}


def run_llama_index(corpus: Path, data: Path) -> dict[str, float]:
    """What a hand-rolled LlamaIndex pipeline does by default: read every file as text
    (PDFs through its pypdf reader), split into sentence windows, embed, store."""
    _private_nltk_data(data)
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from app.core.settings import Settings

    model = Settings().embedding_model
    docs = SimpleDirectoryReader(input_files=[str(p) for p in files_of(corpus)]).load_data()
    embed = HuggingFaceEmbedding(model_name=model, device="cpu", embed_batch_size=32)
    client = QdrantClient(path=str(data / "qdrant"))
    store = QdrantVectorStore(client=client, collection_name="bench_ingest_llamaindex")
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=32), embed],
        vector_store=store,
    )
    nodes = pipeline.run(documents=docs)
    VectorStoreIndex.from_vector_store(
        store, embed_model=embed,
        storage_context=StorageContext.from_defaults(vector_store=store))
    client.close()
    return {"documents": len({d.metadata.get("file_path") for d in docs}),
            "chunks": len(nodes), "failed": 0}


def _private_nltk_data(data: Path) -> None:
    """llama-index ships NLTK data inside its package; installers that hard-link package
    files (uv) leave them multiply linked, which current NLTK refuses to open. A copy of
    our own is an ordinary file."""
    import importlib.util

    spec = importlib.util.find_spec("llama_index.core")
    assert spec and spec.origin
    cache = Path(spec.origin).parent / "_static" / "nltk_cache"
    target = data / "nltk_cache"
    shutil.copytree(cache, target, copy_function=shutil.copyfile)
    os.environ["NLTK_DATA"] = str(target)


SYSTEMS = {"medcite": run_medcite, "llamaindex": run_llama_index}


def child(system: str, corpus: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix=f"bench-{system}-"))
    try:
        started = time.perf_counter()
        out = SYSTEMS[system](corpus, data)
        out["seconds"] = time.perf_counter() - started
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(out))
    finally:
        shutil.rmtree(data, ignore_errors=True)


def measure(system: str, corpus: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", system, str(corpus)],
        capture_output=True, text=True, check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{system} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, nargs="*", default=[1, 10],
                        help="corpus sizes as multiples of the shipped corpora")
    parser.add_argument("--only", nargs="*", help="top-level corpora folders to use")
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; "
          f"corpora: {', '.join(args.only) if args.only else 'all shipped'}")
    header = (f"{'corpus':>8} {'system':11} {'docs':>6} {'chunks':>7} {'seconds':>8} "
              f"{'docs/s':>7} {'chunks/s':>9} {'peak MB':>8}")
    print(header)
    rows: dict[tuple[int, str], dict[str, float]] = {}
    for scale in args.scale:
        with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
            corpus = build_corpus(Path(tmp), scale, args.only)
            for system in args.systems:
                r = measure(system, corpus)
                rows[(scale, system)] = r
                print(f"{'x' + str(scale):>8} {system:11} {r['documents']:>6.0f} "
                      f"{r['chunks']:>7.0f} {r['seconds']:>8.1f} "
                      f"{r['documents'] / r['seconds']:>7.2f} "
                      f"{r['chunks'] / r['seconds']:>9.1f} {r['peak_rss_mb']:>8.0f}",
                      flush=True)
    if "medcite" in args.systems and "llamaindex" in args.systems:
        print("\nmedcite / LlamaIndex (same files, same model):")
        for scale in args.scale:
            m, li = rows[(scale, "medcite")], rows[(scale, "llamaindex")]
            print(f"  x{scale}: documents/s {m['documents'] / m['seconds'] / (li['documents'] / li['seconds']):.2f}×, "  # noqa: E501
                  f"wall time {li['seconds'] / m['seconds']:.2f}× faster, "
                  f"peak memory {m['peak_rss_mb'] / li['peak_rss_mb']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
