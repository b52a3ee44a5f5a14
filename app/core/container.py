"""Wiring: builds the long-lived parts of the service from Settings, once."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass

from qdrant_client import QdrantClient

from app.answering.model_verifiers import build_verifiers
from app.answering.pipeline import AnswerService
from app.api.admission import AdmissionGate
from app.api.ratelimit import RateLimiter
from app.audit.log import AuditLog
from app.core.settings import Settings
from app.llm import local_server as local_llm
from app.llm.client import ChatGenerator
from app.llm.router import Endpoint, GeneratorRouter
from app.operations.service import Operations
from app.security.api_keys import KeyStore
from app.security.oidc import OIDCVerifier
from ingest.catalog import Catalog
from ingest.jobs import IngestJobs
from ingest.pipeline import Ingestor
from retrieval.context import ContextAssembler
from retrieval.embedder import Embedder, pick_device
from retrieval.rerank import build_reranker
from retrieval.search import Retriever
from retrieval.store import ensure_collection, open_client


@dataclass
class Services:
    settings: Settings
    client: QdrantClient
    embedder: Embedder
    retriever: Retriever
    generator: GeneratorRouter
    answers: AnswerService
    keys: KeyStore
    audit: AuditLog
    limiter: RateLimiter
    admission: AdmissionGate
    catalog: Catalog
    jobs: IngestJobs
    # Metrics and quality alarms (app/operations/).
    ops: Operations
    llm_process: subprocess.Popen[bytes] | None = None
    oidc: OIDCVerifier | None = None

    def passage_count(self) -> int:
        return self.retriever.count()

    def close(self) -> None:
        self.jobs.close()
        local_llm.stop_server(self.llm_process)
        self.audit.close()
        self.catalog.close()
        self.client.close()


def build_generator(settings: Settings) -> tuple[GeneratorRouter, subprocess.Popen[bytes] | None]:
    """The primary endpoint (vLLM, or the embedded llama.cpp when LLM_BASE_URL is unset)
    and, when configured, a fallback endpoint."""
    process = None
    base_url = settings.llm_base_url
    if not base_url:
        process = local_llm.start_server(settings)
        base_url = local_llm.server_url(settings)
    mode = settings.llm_structured_output
    if mode == "auto":
        mode = "json_object" if not settings.llm_base_url else "json_schema"
    endpoints = [Endpoint("primary", ChatGenerator(
        base_url=base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
        max_tokens=settings.llm_max_tokens,
        structured_mode=mode,
    ), phi_allowed=True)]
    if settings.llm_fallback_base_url:
        endpoints.append(Endpoint("fallback", ChatGenerator(
            base_url=settings.llm_fallback_base_url,
            model=settings.llm_fallback_model,
            api_key=settings.llm_fallback_api_key,
            timeout_s=settings.llm_timeout_s,
            max_tokens=settings.llm_max_tokens,
            structured_mode=settings.llm_fallback_structured_output,
        ), phi_allowed=settings.llm_fallback_phi_allowed))
    return GeneratorRouter(endpoints), process


def build_retriever(
    settings: Settings, client: QdrantClient, embedder: Embedder, catalog: Catalog
) -> Retriever:
    """Hybrid search with the configured query expansion and reranker. The LLM reranker
    uses the primary endpoint only: the question goes into its prompt, and the primary
    is the one endpoint allowed to see PHI."""
    reranker = build_reranker(
        settings.reranker,
        path=settings.reranker_path,
        device=pick_device(settings.embedding_device),
        llm_base_url=settings.llm_base_url or local_llm.server_url(settings),
        llm_model=settings.llm_model,
        llm_api_key=settings.llm_api_key,
        llm_timeout_s=min(settings.llm_timeout_s, 60.0),
    )
    return Retriever(
        client, settings.collection, embedder, catalog=catalog, reranker=reranker,
        **settings.ranking_options(),
    )


def build_oidc(settings: Settings) -> OIDCVerifier | None:
    if not settings.oidc_issuer:
        return None
    if not (settings.oidc_jwks_file or settings.oidc_jwks_url):
        raise ValueError("OIDC_ISSUER is set but neither OIDC_JWKS_FILE nor OIDC_JWKS_URL")
    return OIDCVerifier(
        issuer=settings.oidc_issuer, audience=settings.oidc_audience,
        jwks_file=settings.oidc_jwks_file, jwks_url=settings.oidc_jwks_url,
        role_claim=settings.oidc_role_claim, groups_claim=settings.oidc_groups_claim,
    )


def build_services(
    settings: Settings, client: QdrantClient | None = None, embedder: Embedder | None = None
) -> Services:
    """Build everything; tests pass an already open client and embedder to share them."""
    # The audit log first: without it the API must not answer, so fail before the
    # expensive parts start.
    audit = AuditLog(settings.database_url)
    embedder = embedder or Embedder(
        settings.embedding_model, settings.embedding_device, settings.embedding_batch_size
    )
    client = client or open_client(settings)
    ensure_collection(client, settings.collection, embedder.dim,
                      quantize=settings.vector_quantization)
    generator, process = build_generator(settings)
    catalog = Catalog(settings.catalog_url)
    retriever = build_retriever(settings, client, embedder, catalog)
    context = (
        ContextAssembler(retriever, settings.context_chars, settings.context_neighbours)
        if settings.context_neighbours else None
    )
    services = Services(
        settings=settings,
        client=client,
        embedder=embedder,
        retriever=retriever,
        generator=generator,
        answers=AnswerService(
            settings, retriever, generator, context=context,
            verifiers=build_verifiers(settings.nli_model_path, settings.nli_entail_threshold,
                                      settings.llm_judge, generator, embedder.device),
        ),
        keys=KeyStore(settings.keys_file),
        oidc=build_oidc(settings),
        audit=audit,
        catalog=catalog,
        jobs=IngestJobs(Ingestor(client, catalog, embedder, settings)),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        admission=AdmissionGate(settings.resolved_max_concurrent_answers,
                                settings.answer_queue, settings.answer_queue_wait_s),
        llm_process=process,
        ops=Operations(settings),
    )
    services.ops.attach(services)
    if process is not None:
        # Off the start-up path: the embedded generator answers one request at a time,
        # so a question arriving meanwhile only waits for the remainder.
        threading.Thread(target=services.answers.warm_up, name="generator-warm-up",
                         daemon=True).start()
    return services
