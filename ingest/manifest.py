"""Reads `manifest.toml`: which files of a corpus folder to ingest, as what, for whom."""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ingest.identity import date_from_filename, derive_doc_key
from ingest.models import DocType, SourceFile


@dataclass(frozen=True)
class SourceRule:
    glob: str
    doc_type: DocType
    access_groups: tuple[str, ...]
    payer: str | None = None
    effective_date: str | None = None
    doc_key: str | None = None


class ManifestError(ValueError):
    pass


def load_rules(manifest_path: Path) -> list[SourceRule]:
    try:
        raw = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {manifest_path}: {exc}") from exc
    rules = []
    for i, entry in enumerate(raw.get("sources", [])):
        try:
            rules.append(
                SourceRule(
                    glob=entry["glob"],
                    doc_type=DocType(entry["doc_type"]),
                    access_groups=tuple(entry.get("access_groups", ["public"])),
                    payer=entry.get("payer"),
                    effective_date=entry.get("effective_date"),
                    doc_key=entry.get("doc_key"),
                )
            )
        except (KeyError, ValueError) as exc:
            raise ManifestError(f"{manifest_path}: sources[{i}] is invalid: {exc}") from exc
    return rules


def default_rule(path: Path, access_groups: tuple[str, ...]) -> SourceRule | None:
    """For files ingested without a manifest: guess the type from the folder names."""
    lowered = str(path).lower()
    for key, doc_type in (
        ("label", DocType.label),
        ("formular", DocType.formulary),
        ("coverage", DocType.coverage),
        ("fhir", DocType.patient),
        ("guideline", DocType.guideline),
    ):
        if key in lowered:
            return SourceRule(glob="*", doc_type=doc_type, access_groups=access_groups)
    return SourceRule(glob="*", doc_type=DocType.guideline, access_groups=access_groups)


def discover(
    root: Path, *, access_groups: tuple[str, ...] | None = None
) -> list[SourceFile]:
    """List the files under `root` (a folder or a single file) with their rules.

    A folder holding `manifest.toml` is read through it; otherwise every file is taken
    and typed from its path. `access_groups` overrides the manifest's groups.
    """
    root = root.resolve()
    if root.is_file():
        rule = default_rule(root, access_groups or ("public",))
        assert rule is not None
        return [_source(root, root.name, rule, access_groups)]
    manifest = root / "manifest.toml"
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    out: list[SourceFile] = []
    if manifest.exists():
        rules = load_rules(manifest)
        for path in files:
            rel = path.relative_to(root).as_posix()
            rule = next((r for r in rules if fnmatch.fnmatchcase(rel, r.glob)), None)
            if rule is not None:
                out.append(_source(path, rel, rule, access_groups))
        return out
    for path in files:
        if path.name in {"LICENSE", "README.md", "INDEX.tsv"} or path.suffix == ".tsv":
            continue
        rule = default_rule(path, access_groups or ("public",))
        if rule is not None:
            out.append(_source(path, path.relative_to(root).as_posix(), rule, access_groups))
    return out


def _source(
    path: Path, rel: str, rule: SourceRule, groups: tuple[str, ...] | None
) -> SourceFile:
    return SourceFile(
        path=path,
        relpath=rel,
        doc_type=rule.doc_type,
        access_groups=groups if groups is not None else rule.access_groups,
        payer=rule.payer,
        # A dated file name ("lipotropics.v2024-01-05.md") says when that version applies.
        effective_date=date_from_filename(rel) or rule.effective_date,
        doc_key=rule.doc_key or derive_doc_key(rel, rule.doc_type.value, rule.payer),
    )
