"""Stable document identity and version identity.

A document (one formulary page, one label, one policy) keeps its `doc_key` across
re-ingests: a policy team dropping `lipotropics.v2024-01-05.7f5fdb53.md` next to last
month's `lipotropics.md` is publishing a new version of the same document, not a new one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from ingest.models import SourceFile

# "name.v2024-01-05.7f5fdb53.md" / "name.v2024-01-05.md": a dated version of "name".
_VERSION_SUFFIX = re.compile(r"\.v(\d{4}-\d{2}-\d{2})(?:\.[0-9a-fA-F]{4,64})?$")
_SLUG = re.compile(r"[^a-z0-9._-]+")


def slug(text: str) -> str:
    return _SLUG.sub("-", text.casefold()).strip("-.") or "document"


def split_version_suffix(stem: str) -> tuple[str, str | None]:
    """('lipotropics.v2024-01-05.7f5fdb53') -> ('lipotropics', '2024-01-05')."""
    match = _VERSION_SUFFIX.search(stem)
    if not match:
        return stem, None
    return stem[: match.start()], match.group(1)


def date_from_filename(relpath: str) -> str | None:
    return split_version_suffix(PurePosixPath(relpath).stem)[1]


def derive_doc_key(relpath: str, doc_type: str, payer: str | None) -> str:
    """`<payer or type>:<file stem without its version suffix>`, e.g.
    `ohio-medicaid:lipotropics`, `label:lipitor-orig`."""
    stem = split_version_suffix(PurePosixPath(relpath).stem)[0]
    scope = slug(payer) if payer else doc_type
    return f"{scope}:{slug(stem)}"


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def version_id(source: SourceFile, content: bytes, build: tuple[str, ...]) -> str:
    """Identity of one build of one version: the document, its bytes, what the manifest
    says about it, and everything that shapes its chunks and vectors (`build`).
    The same bytes under another doc_key are another document's version."""
    digest = hashlib.sha256()
    for part in (source.doc_key, source.doc_type.value, ",".join(source.access_groups),
                 source.payer or "", source.effective_date or "", *build):
        digest.update(part.encode() + b"\0")
    digest.update(content)
    return digest.hexdigest()[:32]
