"""`medcite` command line: ingest, serve, ask, up, eval, keys, local-llm."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.settings import REPO_ROOT, Settings, get_settings

# Set before any library that may try to reach a hub or phone home is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@dataclass(frozen=True)
class IngestOptions:
    """What one ingest run does; `medcite ingest` and `medcite up` both build one, so
    every option the command gains has a default here rather than in hand-made
    Namespaces."""

    path: Path | None = None
    groups: tuple[str, ...] | None = None
    quiet: bool = False
    rebuild: bool = False
    workers: int | None = None
    shard: tuple[int, int] | None = None
    retire_missing: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> IngestOptions:
        groups = tuple(g for g in args.groups.split(",") if g) if args.groups else None
        return cls(path=Path(args.path) if args.path else None, groups=groups,
                   quiet=args.quiet, rebuild=args.rebuild, workers=args.workers,
                   shard=parse_shard(args.shard) if args.shard else None,
                   retire_missing=args.retire_missing)


def parse_shard(text: str) -> tuple[int, int]:
    index, _, total = text.partition("/")
    try:
        shard = (int(index), int(total))
    except ValueError:
        raise ValueError("--shard must be I/N with 0 <= I < N") from None
    if not 0 <= shard[0] < shard[1]:
        raise ValueError("--shard must be I/N with 0 <= I < N")
    return shard


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    try:
        options = IngestOptions.from_args(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return run_ingest(options, settings)


def run_ingest(options: IngestOptions, settings: Settings) -> int:
    from app import audit_cli
    from app.audit_models import AuditAction, RetireDetails
    from ingest.pipeline import ingest_path

    audit_cli.ensure_available(settings)

    root = options.path or settings.corpora_dir
    groups = options.groups
    if options.rebuild:
        from ingest.catalog import Catalog
        from retrieval.store import open_client

        client = open_client(settings)
        if client.collection_exists(settings.collection):
            client.delete_collection(settings.collection)
        client.close()
        catalog = Catalog(settings.catalog_url)
        catalog.drop_collection(settings.collection)
        catalog.close()
        print(f"dropped collection {settings.collection!r} and its version history; "
              "re-ingesting everything")
    report = ingest_path(root, settings, access_groups=groups, progress=not options.quiet,
                         workers=options.workers, shard=options.shard,
                         retire_missing=options.retire_missing,
                         retired_by=audit_cli.operator().name)
    audit_cli.record(settings, AuditAction.ingest,
                     audit_cli.ingest_details(str(root), groups, report))
    for doc_key in report.retired:
        audit_cli.record(settings, AuditAction.retire, RetireDetails(
            doc_key=doc_key, reason=f"its file is no longer under {root}"))
        print(f"retired {doc_key}: its file is no longer under {root}")
    for r in report.failed:
        print(f"FAILED  {r.relpath}: {r.reason}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failed else 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app import audit_cli
    from app.auth import KeyStore, ensure_local_key
    from app.logging_setup import configure
    from app.main import create_app

    configure()
    audit_cli.ensure_available(settings)
    store = KeyStore(settings.keys_file)
    before = {k.key_id for k in store.list()}
    ensure_local_key(store, settings.local_key_file)
    audit_cli.record_new_keys(settings, store, before)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None)
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    key = settings.resolved_api_key()
    if not key:
        print("No API key: set MEDCITE_API_KEY or run `medcite serve` once.", file=sys.stderr)
        return 2
    body: dict[str, object] = {"question": args.question, "strict": args.strict}
    filters: dict[str, object] = {}
    if args.type:
        filters["doc_types"] = args.type
    if args.as_of:
        filters["as_of"] = args.as_of
    if filters:
        body["filters"] = filters
    if args.bundle:
        body["fhir_bundle"] = json.loads(Path(args.bundle).read_text())
    try:
        resp = httpx.post(
            f"{settings.api_url}/ask", json=body, timeout=settings.llm_timeout_s * 2 + 60,
            headers={"Authorization": f"Bearer {key}"},
        )
    except httpx.HTTPError as exc:
        print(f"API at {settings.api_url} unreachable: {exc}", file=sys.stderr)
        return 2
    if resp.status_code != 200:
        print(f"HTTP {resp.status_code}: {resp.json().get('detail')}", file=sys.stderr)
        return 1
    data = resp.json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(format_answer(data))
    return 0


def format_answer(data: dict) -> str:  # type: ignore[type-arg]
    """Plain-text rendering for the terminal: sentences, markers, then the sources."""
    passages = {p["id"]: p for p in data["passages"]}
    lines = [f"Status: {data['status']}"]
    if data["abstained"]:
        lines.append(f"Abstained: {data['abstain_reason']}")
    order: list[str] = []
    for s in data["sentences"]:
        marks = []
        for c in s["citations"]:
            if c["passage_id"] not in order:
                order.append(c["passage_id"])
            n = order.index(c["passage_id"]) + 1 if c["passage_id"] in order else "?"
            marks.append(f"[{n}:{c['status']}]")
        lines.append(f"- {s['text']} {' '.join(marks)}")
    if order:
        lines.append("Sources:")
    for n, pid in enumerate(order, start=1):
        p = passages.get(pid)
        if p is None:
            continue
        prov = p["provenance"]
        where = " › ".join(prov["section_path"])
        page = f", page {prov['page']}" if prov.get("page") else ""
        lines.append(f"  [{n}] {prov['title']} — {where}{page} ({prov['source_file']})")
    return "\n".join(lines)


def wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest the bundled corpora, then run the API and the UI until interrupted."""
    code = run_ingest(IngestOptions(), settings)
    if code not in (0, 1):
        return code
    env = dict(os.environ, MEDCITE_API_URL=f"http://{args.host}:{args.port}")
    api = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", args.host, "--port", str(args.port)],
        env=env,
    )
    if not wait_for(f"http://{args.host}:{args.port}/health", 600):
        api.terminate()
        print("API did not start; see its log above", file=sys.stderr)
        return 1
    # `serve` created the local key on start; the UI acts with it unless one is set.
    key = settings.resolved_api_key()
    if key:
        env.setdefault("MEDCITE_API_KEY", key)
    ui = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "ui" / "app.py"),
         "--server.address", args.host, "--server.port", str(args.ui_port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        env=env,
    )
    print(f"medcite is up: API http://{args.host}:{args.port}/docs  "
          f"UI http://{args.host}:{args.ui_port}  (Ctrl-C stops both)")
    stop_children_on_exit([ui, api])
    return 0


def stop_children_on_exit(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait until a child exits or we are told to stop (Ctrl-C or SIGTERM), then stop
    all children, politely first."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        while all(c.poll() is None for c in children):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def cmd_eval_answers(args: argparse.Namespace, settings: Settings) -> int:
    from app import answer_eval

    return answer_eval.main(args, settings)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    if args.answers:
        from app.answer_eval_options import from_eval_args

        return cmd_eval_answers(from_eval_args(args), settings)
    from retrieval.evaluation import runner

    return runner.main(args, settings)


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from app import audit_cli
    from app.audit_models import AuditAction, KeyDetails
    from app.auth import KeyStore, Role

    store = KeyStore(settings.keys_file)
    if args.action in ("create", "revoke"):
        audit_cli.ensure_available(settings)
    if args.action == "create":
        before = {k.key_id for k in store.list()}
        raw, key = store.create(args.name, Role(args.role), args.groups.split(","))
        audit_cli.record_new_keys(settings, store, before)
        print(f"key id {key.key_id} ({key.role.value}, groups {','.join(key.groups)}):")
        print(raw)
    elif args.action == "revoke":
        if not store.revoke(args.key_id):
            print(f"no active key {args.key_id}", file=sys.stderr)
            return 1
        audit_cli.record(settings, AuditAction.key_revoke,
                         KeyDetails(kind="key_revoke", key_id=args.key_id))
        print(f"revoked {args.key_id}")
    else:
        for k in store.list():
            state = "revoked" if k.revoked else "active"
            print(f"{k.key_id}  {k.name:<20} {k.role.value:<13} {','.join(k.groups):<20} {state}")
    return 0


def cmd_local_llm(args: argparse.Namespace, settings: Settings) -> int:
    from app import local_llm

    proc = local_llm.start_server(settings)
    print(f"local generator at {local_llm.server_url(settings)}")
    if proc is None:
        return 0
    try:
        proc.wait()
    except KeyboardInterrupt:
        local_llm.stop_server(proc)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medcite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="parse, chunk, embed and store documents")
    p.add_argument("path", nargs="?", help="folder or file (default: the bundled corpora)")
    p.add_argument("--groups", help="comma-separated access groups (overrides the manifest)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--rebuild", action="store_true",
                   help="drop the collection first (after a schema or model change)")
    p.add_argument("--workers", type=int,
                   help="parser processes (default MEDCITE_INGEST_WORKERS; 0 = per core)")
    p.add_argument("--retire-missing", action="store_true",
                   help="retire published documents whose file is no longer in the folder "
                        "(their history stays queryable as of earlier dates)")
    p.add_argument("--shard", help="I/N: only the documents of shard I of N, so N workers "
                   "on several machines can share one corpus (Qdrant server + PostgreSQL "
                   "catalog)")
    p.set_defaults(func=cmd_ingest)

    for name, func, help_text in (
        ("serve", cmd_serve, "run the API"),
        ("up", cmd_up, "ingest the bundled corpora, then run the API and the UI"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--ui-port", type=int, default=8501)
        p.set_defaults(func=func)

    p = sub.add_parser("ask", help="ask the running API a question")
    p.add_argument("question")
    p.add_argument("--type", action="append", help="document type filter (repeatable)")
    p.add_argument("--bundle", help="FHIR Bundle JSON file as patient context")
    p.add_argument("--strict", action="store_true", help="drop unverified sentences")
    p.add_argument("--as-of", help="answer from the versions in force on YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="print the raw JSON response")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("keys", help="manage API keys")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("--name", default="user")
    p.add_argument("--role", default="clinician")
    p.add_argument("--groups", default="public")
    p.add_argument("--key-id")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("eval", help="compare retrieval systems on question sets with gold")
    from retrieval.evaluation.options import add_arguments

    add_arguments(p)
    p.add_argument("--answers", action="store_true",
                   help="evaluate answers instead of retrieval (as `medcite eval-answers`)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("eval-answers", help="answer quality: medcite against LlamaIndex's "
                       "CitationQueryEngine on our questions, PubMedQA and rephrasings")
    from app.answer_eval_options import add_arguments as add_answer_arguments

    add_answer_arguments(p)
    p.set_defaults(func=cmd_eval_answers)

    p = sub.add_parser("local-llm", help="run the embedded CPU generator in the foreground")
    p.set_defaults(func=cmd_local_llm)

    from app import audit_cli, documents_cli

    audit_cli.add_parser(sub)
    documents_cli.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.audit_models import AuditUnavailable

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, get_settings()))
    except AuditUnavailable as exc:
        print(f"audit log unavailable, so nothing more was done: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
