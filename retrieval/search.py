"""Retrieval, top to bottom: versions in force → embed the question → read what it asks
(retrieval/intent.py) → filtered hybrid search in Qdrant (dense + sparse, plus the same
two arms restricted to the drugs it names, fused by RRF) → structure-aware ranking
(label sections that state the asked attribute, formulary records for formulary
questions, a guideline's administrative fields below its recommendations unless asked
for) → passages.

Access groups and document versions are enforced inside Qdrant's filter, so a passage
outside the caller's groups, or from a version not in force, is never returned, let
alone sent to the generator. The set of versions in force is read once per search, so
a re-ingest publishing a new version mid-search cannot mix two versions of a document.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from qdrant_client import QdrantClient, models

from retrieval.drugs import find_drug_mentions
from retrieval.embedder import Embedder
from retrieval.expansion import ExpansionMode, expand
from retrieval.intent import QueryIntent, read_intent
from retrieval.models import Passage, Provenance, SearchFilters
from retrieval.rerank import Reranker
from retrieval.schema import ChunkPayload
from retrieval.sparse import encode_query
from retrieval.store import DENSE, SPARSE, count, drug_keys, match_any


def build_filter(
    filters: SearchFilters | None, access_groups: list[str], versions: list[str] | None = None,
    excluded: list[str] | None = None,
) -> models.Filter:
    """The engine's filter: the caller's access groups, the versions in force, the
    request's own filters.

    With `excluded` (every other version the catalog knows) and fewer of them than
    versions in force, the versions are filtered as "none of the excluded" rather than
    "one of the in force": the same points when every chunk's version is known to the
    catalog, and far cheaper for the engine (measured at 100k chunks, 4,500 versions in
    force: hybrid p50 21 ms against 8 ms, bench/RESULTS.md). Whatever the engine
    returns is still checked against the in-force set (`Retriever.search`), so a chunk
    of a version the catalog does not know is never returned either way."""
    # An empty group (or version) list must match nothing, never everything.
    must: list[models.Condition] = [match_any("access_groups", access_groups or ["\0none"])]
    must_not: list[models.Condition] = []
    if versions is not None and excluded is not None and versions \
            and len(excluded) < len(versions):
        must_not.append(models.IsEmptyCondition(is_empty=models.PayloadField(key="version_id")))
        if excluded:
            must_not.append(match_any("version_id", excluded))
    elif versions is not None:
        must.append(match_any("version_id", versions or ["\0none"]))
    if filters:
        if filters.doc_types:
            must.append(match_any("doc_type", filters.doc_types))
        if filters.payers:
            must.append(match_any("payer", filters.payers))
        if filters.doc_ids:
            must.append(match_any("doc_id", filters.doc_ids))
    return models.Filter(must=must, must_not=must_not or None)


def to_passage(
    point: models.ScoredPoint | models.Record, score: float,
    numbers: dict[str, int] | None = None,
) -> Passage:
    p = ChunkPayload.read(point.payload)
    vid = p.version_id
    return Passage(
        id=str(point.id),
        text=p.text,
        score=score,
        provenance=Provenance(
            doc_id=p.doc_id,
            title=p.title,
            source_file=p.source_file,
            doc_type=p.doc_type,
            section_path=p.section_path,
            page=p.page,
            char_start=p.char_start,
            char_end=p.char_end,
            effective_date=p.effective_date,
            version=p.version,
            payer=p.payer,
            access_groups=p.access_groups,
            doc_key=p.doc_key,
            version_id=vid,
            version_number=(numbers or {}).get(vid) if vid else None,
            section_code=p.section_code,
            unit_kind=p.unit_kind,
            applies_to=p.applies_to,
        ),
    )


SearchMode = Literal["dense", "sparse", "hybrid"]
# How hybrid search merges its dense and sparse candidates: reciprocal rank fusion, or
# distribution-based score fusion (scores normalised per arm, then summed), which keeps
# how far ahead a strong dense hit is instead of only its rank.
FusionMode = Literal["rrf", "dbsf"]
# Candidates each arm contributes before fusion: enough for RRF to promote a passage
# that only one arm ranks highly.
PREFETCH = 30
FILTER_CACHE = 64  # distinct (groups, request filters) kept per versions view
# Fused candidates the structure-aware ranking reorders (before de-duplication).
STRUCTURE_CANDIDATES = 50
# How what a question asks moves a fused candidate (its RRF score times the factor).
# Measured on eval/corpora_questions.jsonl by kind (bench/RESULTS-retrieval.md).
SECTION_CODE_BOOST = 1.5  # an SPL section whose LOINC code states the asked attribute
FORMULARY_UNIT_BOOST = 1.3  # a formulary row or table, for a formulary question
RECOMMENDATION_BOOST = 1.2  # a guideline's recommendations
COVERAGE_BOOST = 2.0  # a coverage policy, for a question about what a payer covers or pays
FLAG_NOTE_BOOST = 2.0  # a payer's rule for a flag the question asks about (QL, AR, ST)
ADMIN_FACTOR = 0.3  # administrative/bibliographic fields, unless the question asks them
ADMIN_BOOST = 2.0  # ... and when it does ("who developed it?"): the field answers it
DATE_FIELD_BOOST = 2.0  # ... a date field ("Date Released"), when it asks when
_DATE_FIELD = re.compile(r"\bdates?\b|\breleased?\b|\brevis|\bupdated?\b|\beffective\b", re.I)
CRITERIA_FOR_DRUG_BOOST = 1.5  # a payer's criteria that name the asked drug among theirs
METHODS_FACTOR = 0.6  # how a guideline was made, unless the question asks
# A label's Medication Guide and patient information restate its professional sections for
# patients ("Your doctor should check you for TB during treatment"); a clinician's
# question is answered by the professional text ("Test patients for latent TB before
# HUMIRA use"), unless it asks what the patient is told.
PATIENT_FACING_FACTOR = 0.7
PATIENT_FACING_CODES = frozenset({"42231-1", "42230-3"})  # Medication Guide, patient info
# "boost": the factors above; "filter": label passages outside the asked sections are
# dropped from the candidates (others kept); "off": plain hybrid search.
StructureMode = Literal["boost", "filter", "off"]


class VersionSource(Protocol):
    """Which document versions are in force on a day (ingest's catalog is one)."""

    def in_force_versions(
        self, collection: str, as_of: str | None = None
    ) -> Mapping[str, Mapping[str, Any]]: ...

    def known_versions(self, collection: str) -> AbstractSet[str]:
        """Every version a stored chunk can carry (any state)."""
        ...


@dataclass(frozen=True)
class VersionView:
    """The versions one search may see, read from the catalog's cached sets (kept here,
    so that comparing them by identity is sound)."""

    in_force: Mapping[str, Mapping[str, Any]]
    known: AbstractSet[str]
    numbers: dict[str, int]  # version id -> its number, for the passages' provenance
    versions: list[str]  # in force
    excluded: list[str]  # known, not in force
    # Drug keys of the collection the packaged dictionary does not know: formulary
    # products ("auvelity"), recognised in questions as drugs (retrieval/drugs.py).
    products: frozenset[str] = frozenset()


@dataclass
class Retriever:
    client: QdrantClient
    collection: str
    embedder: Embedder
    # Which versions a query may see; None only for collections built outside the
    # ingest pipeline (nothing to version).
    catalog: VersionSource | None = None
    # Optional stages (retrieval/rerank.py, retrieval/expansion.py); off unless configured.
    reranker: Reranker | None = None
    expansion: ExpansionMode = "off"
    rerank_candidates: int = 20
    fusion: FusionMode = "rrf"
    # RRF weight of the dense arm's ranks against the lexical arm's (1.0: equal say).
    dense_weight: float = 1.0
    # RRF's ranking constant k (rank r from 0 scores 1/(k + r)); None: Qdrant's
    # default, 2. A larger k flattens the top ranks, so agreement between the arms
    # counts for more than one arm's first place.
    rrf_k: int | None = None
    # HNSW search beam for the dense arm on a Qdrant server; None: the server's default.
    hnsw_ef: int | None = None
    # Structure-aware ranking (module docstring); "off" is plain hybrid search.
    structure: StructureMode = "boost"
    # The drugs a question names as their own filtered arms of the hybrid query.
    drug_arms: bool = True
    # Embedded Qdrant is not safe for concurrent use from the API's worker threads.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _view: VersionView | None = field(default=None, repr=False)
    # (the catalog's `known` set they were read for, the products): the view is one slot
    # that a question as of another day replaces, but the products depend only on what
    # the collection holds, so they are not read again for it.
    _products_read: tuple[AbstractSet[str], frozenset[str]] | None = field(
        default=None, repr=False)
    # (view, filter) by (view id, access groups, request filters): see `_filter`.
    _filters: dict[tuple[Any, ...], tuple[VersionView, models.Filter]] = field(
        default_factory=dict, repr=False)

    def search(
        self,
        question: str,
        *,
        access_groups: list[str],
        filters: SearchFilters | None = None,
        limit: int = 5,
        mode: SearchMode = "hybrid",
    ) -> list[Passage]:
        """Top passages for `question` that the caller's groups may see.

        Over-fetches because repackaged labels and re-published pages repeat passages
        word for word, and duplicates would crowd out the context.
        """
        # The versions in force are read once, here: the whole search sees one snapshot.
        numbers: dict[str, int] | None = None
        versions: list[str] | None = None
        products: frozenset[str] = frozenset()
        if self.catalog is not None:
            as_of = filters.as_of.isoformat() if filters and filters.as_of else None
            view = self._version_view(
                self.catalog.in_force_versions(self.collection, as_of),
                self.catalog.known_versions(self.collection))
            numbers, versions, products = view.numbers, view.versions, view.products
            flt = self._filter(view, filters, access_groups)
        else:
            flt = build_filter(filters, access_groups, versions)
        keep = max(limit, self.rerank_candidates) if self.reranker else limit
        fetch = keep * 3
        intent = read_intent(question, products) \
            if mode == "hybrid" and self.structure != "off" else None
        if intent is not None:
            fetch = max(fetch, STRUCTURE_CANDIDATES)
        lexical, semantic = question, question
        if self.expansion != "off":
            lexical = expand(question, drugs=self.expansion != "abbreviations").text
            semantic = lexical if self.expansion == "both" else question
        sparse = encode_query(lexical)
        sparse_query = models.SparseVector(indices=sparse.indices, values=sparse.values)
        if mode == "sparse" and not sparse.indices:
            return []
        dense = self.embedder.embed_query(semantic) if mode != "sparse" else None
        params = models.SearchParams(hnsw_ef=self.hnsw_ef) if self.hnsw_ef else None
        with self._lock:
            if mode == "dense":
                hits = self.client.query_points(
                    self.collection, query=dense, using=DENSE, query_filter=flt,
                    search_params=params, limit=fetch, with_payload=True,
                ).points
            elif mode == "sparse":
                hits = self.client.query_points(
                    self.collection, query=sparse_query, using=SPARSE, query_filter=flt,
                    limit=fetch, with_payload=True,
                ).points
            else:
                # The query's filter reaches both arms (Qdrant propagates it into every
                # prefetch); repeating it per arm made the embedded engine test every
                # point against it twice.
                prefetch = [models.Prefetch(query=dense, using=DENSE, limit=PREFETCH,
                                            params=params)]
                if sparse.indices:
                    prefetch.append(models.Prefetch(
                        query=sparse_query, using=SPARSE, limit=PREFETCH
                    ))
                arm_drugs = list(intent.drugs or intent.class_drugs) if intent else []
                if intent is not None and arm_drugs and self.drug_arms:
                    # The drugs the question names (else the members of the class it
                    # names), as a lexical must-match on the payload: the same two arms
                    # over only the passages about them, so a formulary row or label
                    # section of that drug is a candidate even when prose about its
                    # class outscores it.
                    named = models.Filter(must=[match_any("drugs", arm_drugs)])
                    prefetch.append(models.Prefetch(query=dense, using=DENSE, limit=PREFETCH,
                                                    params=params, filter=named))
                    if sparse.indices:
                        prefetch.append(models.Prefetch(query=sparse_query, using=SPARSE,
                                                        limit=PREFETCH, filter=named))
                    if intent.section_codes:
                        # "The boxed warning of drug X": that drug's sections with the
                        # asked LOINC codes, a structured lookup as arms of their own.
                        coded = models.Filter(must=[
                            match_any("drugs", arm_drugs),
                            match_any("section_code", list(intent.section_codes))])
                        prefetch.append(models.Prefetch(query=dense, using=DENSE,
                                                        limit=PREFETCH, params=params,
                                                        filter=coded))
                        if sparse.indices:
                            prefetch.append(models.Prefetch(
                                query=sparse_query, using=SPARSE, limit=PREFETCH,
                                filter=coded))
                if intent is not None and intent.formulary and intent.listing:
                    # "Which agents are preferred in class X": whole tables as arms of
                    # their own, since a long table never outscores its own rows.
                    must = [match_any("unit_kind", ["table"]),
                            match_any("doc_type", ["formulary"])]
                    if arm_drugs and self.drug_arms:
                        # "Which statins": the tables that list a member of the class.
                        must.append(match_any("drugs", arm_drugs))
                    tables = models.Filter(must=must)
                    prefetch.append(models.Prefetch(query=dense, using=DENSE, limit=PREFETCH,
                                                    params=params, filter=tables))
                    if sparse.indices:
                        prefetch.append(models.Prefetch(query=sparse_query, using=SPARSE,
                                                        limit=PREFETCH, filter=tables))
                if intent is not None and intent.coverage:
                    # "How often can HbA1c be billed to Medicare?": a guideline's prose
                    # on the same test outscored every coverage policy in both arms, so
                    # the NCD never became a candidate for the coverage boost to lift.
                    # The policies get arms of their own, as whole tables do for lists.
                    policies = models.Filter(must=[match_any("doc_type", ["coverage"])])
                    prefetch.append(models.Prefetch(query=dense, using=DENSE, limit=PREFETCH,
                                                    params=params, filter=policies))
                    if sparse.indices:
                        prefetch.append(models.Prefetch(query=sparse_query, using=SPARSE,
                                                        limit=PREFETCH, filter=policies))
                # The fused hits come with their dense vectors: the cosine below needs
                # them, and a second call by id cost ~1 ms a search.
                hits = self.client.query_points(
                    self.collection, prefetch=prefetch, query=self._fusion(len(prefetch)),
                    query_filter=flt, limit=fetch, with_payload=True, with_vectors=[DENSE],
                ).points
                if intent is not None:
                    hits = rank_by_structure(hits, intent, self.structure)
                else:
                    hits = settle_ties(hits)
                # Fused scores are not similarities; abstention needs the cosine.
                hits = self._with_dense_scores(hits, dense)
        if numbers is not None:
            # The engine's filter is exact only for versions the catalog knows; a chunk
            # of any other (an interrupted build whose catalog row is gone) stops here.
            hits = [h for h in hits if (h.payload or {}).get("version_id") in numbers]
        passages = dedupe([to_passage(h, float(h.score), numbers) for h in hits])[:keep]
        if self.reranker is not None:
            passages = self.reranker.rerank(question, passages)
        return passages[:limit]

    def _version_view(self, in_force: Mapping[str, Mapping[str, Any]],
                      known: AbstractSet[str]) -> VersionView:
        """What the search needs from the catalog's two sets. The catalog hands out the
        same cached objects while nothing changes, so this is computed once per change,
        not per question (it runs over every version the catalog holds: 4,500 at 100k
        chunks took ~1 ms a question)."""
        view = self._view
        if view is not None and view.in_force is in_force and view.known is known:
            return view
        view = VersionView(
            in_force, known, {vid: int(row["number"]) for vid, row in in_force.items()},
            list(in_force), sorted(v for v in known if v not in in_force),
            self._products(known))
        self._view = view
        return view

    def _filter(self, view: VersionView, filters: SearchFilters | None,
                access_groups: list[str]) -> models.Filter:
        """`build_filter` once per view, groups and request filters: the same object
        each time, which the edge engine translates once (a versions filter of 5,000
        ids took ~1.3 ms a search to translate at 1M chunks)."""
        key = (id(view), tuple(access_groups),
               filters.model_dump_json() if filters is not None else None)
        cached = self._filters.get(key)
        if cached is not None and cached[0] is view:
            return cached[1]
        if len(self._filters) >= FILTER_CACHE:
            self._filters.clear()
        flt = build_filter(filters, access_groups, view.versions, view.excluded)
        self._filters[key] = (view, flt)
        return flt

    def intent(self, question: str) -> QueryIntent:
        """What `question` asks, read as `search` reads it: the collection's own
        products (`VersionView.products`) count as drugs beside the dictionary's."""
        products = frozenset[str]()
        if self.catalog is not None:
            products = self._version_view(self.catalog.in_force_versions(self.collection),
                                          self.catalog.known_versions(self.collection)).products
        return read_intent(question, products)

    def _products(self, known: AbstractSet[str]) -> frozenset[str]:
        """The collection's drug keys that are products unknown to the dictionary: once
        per catalog change (`known` is the catalog's cached set for its generation), not
        per question or per as-of day (~0.2 s at 8,500 chunks)."""
        read = self._products_read
        if read is not None and read[0] is known:
            return read[1]
        products = frozenset(k for k in drug_keys(self.client, self.collection)
                             if not find_drug_mentions(k))
        self._products_read = (known, products)
        return products

    def _fusion(self, arms: int) -> models.Query:
        # Arms alternate dense, sparse (then the drug-filtered dense, sparse).
        weighted = arms >= 2 and self.dense_weight != 1.0
        if self.fusion == "rrf" and (weighted or self.rrf_k is not None):
            weights = [self.dense_weight if i % 2 == 0 else 1.0 for i in range(arms)]
            return models.RrfQuery(rrf=models.Rrf(
                k=self.rrf_k, weights=weights if weighted else None))
        return models.FusionQuery(fusion=models.Fusion(self.fusion))

    def count(self) -> int:
        # Not under the search lock: /health's count would wait for whole searches (up
        # to 8 s under 16 concurrent ones, issue 19). Every client serialises its own
        # calls (retrieval/store.py, retrieval/engines/edge.py), so one call is enough.
        return count(self.client, self.collection)

    def _with_dense_scores(
        self, hits: list[models.ScoredPoint], dense: list[float] | None
    ) -> list[models.ScoredPoint]:
        """The hits' cosine to the question, from their stored (normalised) vectors: the
        ones the query returned with them, the rest looked up by id, never another search
        over the collection."""
        if not hits or dense is None:
            return hits
        vectors = [(h.id, _dense_of(h)) for h in hits]
        found = [(i, v) for i, v in vectors if v is not None]
        missing = [i for i, v in vectors if v is None]
        if missing:
            stored = self.client.retrieve(self.collection, ids=missing,
                                          with_payload=False, with_vectors=[DENSE])
            found += [(r.id, v) for r in stored if (v := _dense_of(r)) is not None]
        query = np.asarray(dense, dtype=np.float32)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        cosine: dict[Any, float] = {}
        if found:
            # One matrix product for all hits (per-hit numpy calls were ~1 ms a search).
            matrix = np.asarray([v for _, v in found], dtype=np.float32)
            norms = np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
            scores = (matrix @ query) / norms
            cosine = {pid: float(x) for (pid, _), x in zip(found, scores, strict=True)}
        for h in hits:
            h.score = cosine.get(h.id, 0.0)
        return hits


def _dense_of(point: models.ScoredPoint | models.Record) -> Any:
    vector = point.vector
    return vector.get(DENSE) if isinstance(vector, dict) else None


def structure_factor(payload: ChunkPayload, intent: QueryIntent) -> float:
    """How much what the question asks favours this unit (1.0: neutral)."""
    factor = 1.0
    if intent.section_codes and payload.section_code in intent.section_codes:
        factor *= SECTION_CODE_BOOST
    if intent.formulary and payload.doc_type == "formulary":
        # A list question wants the whole table; a question about one drug its row;
        # "what must be tried first" the prose of the criteria, not the row's "PA" flag.
        wanted = "table" if intent.listing else "row"
        if payload.unit_kind == wanted and intent.status:
            factor *= FORMULARY_UNIT_BOOST
        elif intent.criteria and payload.unit_kind == "section":
            factor *= FORMULARY_UNIT_BOOST
            # The criteria written for the drug's status or flag name it (ingest's
            # `scope_criteria`); the decision tree and other pages' criteria do not.
            if intent.drugs and set(payload.drugs) & set(intent.drugs):
                factor *= CRITERIA_FOR_DRUG_BOOST
        elif intent.criteria and payload.unit_kind == "row":
            # A row's "PA" or "ST" flag says a criterion exists, not what it is; the
            # drug arms rank the asked drug's rows high four times over.
            factor /= FORMULARY_UNIT_BOOST
    if intent.flags and payload.unit_kind != "row" and set(payload.flags) & set(intent.flags):
        # A row's flag says a rule exists; the note states it ("6 doses per claim").
        factor *= FLAG_NOTE_BOOST
    if payload.section_code in PATIENT_FACING_CODES and not intent.patient_facing:
        factor *= PATIENT_FACING_FACTOR
    if intent.coverage and payload.doc_type == "coverage":
        factor *= COVERAGE_BOOST
    if payload.unit_kind == "recommendation":
        factor *= RECOMMENDATION_BOOST
    elif payload.unit_kind == "admin" and intent.admin:
        factor *= ADMIN_BOOST
        field = payload.section_path[-1] if payload.section_path else ""
        if intent.asks_date and _DATE_FIELD.search(field):
            factor *= DATE_FIELD_BOOST
    elif payload.unit_kind == "admin":
        factor *= ADMIN_FACTOR
    elif payload.unit_kind == "methods" and not intent.admin:
        factor *= METHODS_FACTOR
    return factor


def rank_by_structure(
    hits: list[models.ScoredPoint], intent: QueryIntent, mode: StructureMode = "boost"
) -> list[models.ScoredPoint]:
    """Fused candidates reordered by `structure_factor` (ties by id, see `settle_ties`).
    With "filter", label passages whose section does not state the asked
    attribute are dropped when some label passage does."""
    payloads = [ChunkPayload.read(h.payload) for h in hits]
    if mode == "filter" and intent.section_codes:
        wanted = [p.doc_type == "label" and p.section_code in intent.section_codes
                  for p in payloads]
        if any(wanted):
            kept = [(h, p) for h, p, w in zip(hits, payloads, wanted, strict=True)
                    if w or p.doc_type != "label"]
            hits, payloads = [h for h, _ in kept], [p for _, p in kept]
    for h, p in zip(hits, payloads, strict=True):
        h.score = float(h.score) * structure_factor(p, intent)
    return settle_ties(hits)


def settle_ties(hits: list[models.ScoredPoint]) -> list[models.ScoredPoint]:
    """Hits by score, equal scores by id. RRF gives equal scores often (ranks 2 and 3
    in one arm, 3 and 2 in the other), and the engine's order among them changed
    after a restart (segments re-read): the same question must cite the same passages."""
    return sorted(hits, key=lambda h: (-float(h.score), str(h.id)))


def dedupe(passages: list[Passage]) -> list[Passage]:
    """Keep the best-scored copy of passages whose text is the same."""
    seen: set[str] = set()
    out = []
    for p in passages:
        key = " ".join(p.text.casefold().split())
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
