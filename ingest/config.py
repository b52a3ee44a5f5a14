"""What the ingest pipeline needs to know, as a Protocol: the application's settings
object satisfies it, and ingest never imports the application."""

from __future__ import annotations

from typing import Protocol

from retrieval.store import StoreSettings


class IngestSettings(StoreSettings, Protocol):
    @property
    def collection(self) -> str: ...

    @property
    def catalog_url(self) -> str: ...

    @property
    def embedding_model(self) -> str: ...

    @property
    def embedding_device(self) -> str: ...

    @property
    def embedding_batch_size(self) -> int: ...

    @property
    def chunk_chars(self) -> int: ...

    @property
    def chunk_overlap_chars(self) -> int: ...

    @property
    def max_file_bytes(self) -> int: ...

    @property
    def ingest_workers(self) -> int: ...

    @property
    def ingest_write_batch(self) -> int: ...
