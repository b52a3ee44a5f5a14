"""The answer-quality baseline: a plain LlamaIndex `CitationQueryEngine`.

What a team gets from the framework without medcite: its default citation prompt ("cite
the appropriate source(s) using their corresponding numbers"), its default
`VectorStoreIndex` (in-memory) over the same chunks of the same corpus embedded by the
same model, and the same generator endpoint, called through a minimal LlamaIndex LLM.
The chunk vectors are the ones medcite stored (same model, same text), so the baseline
costs no second embedding pass; queries are embedded by LlamaIndex's HuggingFace
integration with the same model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import openai
from qdrant_client import QdrantClient

from retrieval.models import Passage, Provenance
from retrieval.store import DENSE

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SOURCE_PREFIX = re.compile(r"^Source \d+:\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass
class BaselineAnswer:
    text: str
    sentences: list[tuple[str, list[Passage]]]  # sentence without markers, cited passages
    sources: list[Passage]


def _llm(base_url: str, model: str, api_key: str, timeout_s: float, max_tokens: int) -> Any:
    """A LlamaIndex LLM over an OpenAI-compatible chat endpoint (vLLM, llama.cpp)."""
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback

    client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)

    class OpenAICompatible(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=4096, num_output=max_tokens, model_name=model)

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            out = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}],
                temperature=0.0, max_tokens=max_tokens,
            )
            return CompletionResponse(text=out.choices[0].message.content or "")

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            response = self.complete(prompt)
            yield response

    return OpenAICompatible()


def _passage(node: Any, score: float | None) -> Passage:
    meta = node.metadata
    text = _SOURCE_PREFIX.sub("", node.get_content())
    return Passage(
        id=node.node_id, text=text, score=score or 0.0,
        provenance=Provenance(
            doc_id=str(meta.get("doc_id", "")), title=str(meta.get("title", "")),
            source_file=str(meta.get("source_file", "")), doc_type="",
            section_path=list(meta.get("section_path") or []), char_start=0,
            char_end=len(text),
        ),
    )


def split_cited(text: str, sources: list[Passage]) -> list[tuple[str, list[Passage]]]:
    """Sentences of a "... [1][2]." answer, each with the sources its markers name."""
    out = []
    for sentence in _SENTENCE_END.split(text.strip()):
        cited: list[Passage] = []
        for group in _MARKER.findall(sentence):
            for n in (int(x) for x in group.split(",")):
                if 1 <= n <= len(sources) and sources[n - 1] not in cited:
                    cited.append(sources[n - 1])
        plain = " ".join(_MARKER.sub("", sentence).split()).replace(" .", ".")
        if plain:
            out.append((plain, cited))
    return out


class CitationBaseline:
    def __init__(
        self, client: QdrantClient, collection: str, model_path: str, *, base_url: str,
        model: str, api_key: str, timeout_s: float, max_tokens: int, top_k: int,
    ) -> None:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.schema import TextNode
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        keys = ["source_file", "doc_id", "title", "section_path"]
        nodes = []
        offset = None
        while True:
            points, offset = client.scroll(collection, limit=512, offset=offset,
                                           with_payload=True, with_vectors=[DENSE])
            for p in points:
                pl = p.payload or {}
                vectors = p.vector if isinstance(p.vector, dict) else {}
                nodes.append(TextNode(
                    id_=str(p.id), text=str(pl.get("text", "")),
                    metadata={k: pl.get(k) for k in keys},
                    embedding=list(vectors[DENSE]),  # type: ignore[arg-type]
                    # Provenance is for judging, not for the prompt or the embedding.
                    excluded_llm_metadata_keys=keys, excluded_embed_metadata_keys=keys,
                ))
            if offset is None:
                break
        self._embed = HuggingFaceEmbedding(model_name=model_path, device="cpu")
        self._index = VectorStoreIndex(nodes, embed_model=self._embed)
        self._by_doc: dict[str, list[TextNode]] = {}
        for node in nodes:
            self._by_doc.setdefault(str(node.metadata.get("doc_id")), []).append(node)
        self._llm = _llm(base_url, model, api_key, timeout_s, max_tokens)
        self._top_k = top_k

    def retriever(self, doc_id: str | None = None) -> Any:
        """The index's retriever, or one over a single document's chunks.

        One document gets its own small index: the in-memory vector store's metadata
        filters matched nothing for nodes that carry their own embeddings (llama-index-core
        0.14), which left the restricted baseline with no sources at all."""
        from llama_index.core import VectorStoreIndex

        index = (VectorStoreIndex(self._by_doc.get(doc_id, []), embed_model=self._embed)
                 if doc_id else self._index)
        return index.as_retriever(similarity_top_k=self._top_k)

    def ask(self, question: str, doc_id: str | None = None) -> BaselineAnswer:
        from llama_index.core.query_engine import CitationQueryEngine

        engine = CitationQueryEngine(retriever=self.retriever(doc_id), llm=self._llm)
        response = engine.query(question)
        sources = [_passage(n.node, n.score) for n in response.source_nodes]
        text = str(response.response or "")
        return BaselineAnswer(text, split_cited(text, sources), sources)
