"""The retrieved sections of the asked drug's label that a server-quoted sentence may come
from (`contraindications.py`, `condition_warnings.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from app.answering.units import Unit
from retrieval.drugs import drug_names
from retrieval.models import Passage


def drug_sections(
    drugs: set[str], passages: list[Passage], units: list[list[Unit]], cited: set[str],
    wanted: Callable[[Passage], bool],
) -> Iterator[tuple[Passage, list[Unit]]]:
    """(passage, its units) for each retrieved passage that `wanted` accepts and whose
    label names one of `drugs`; the passages the answer already cites (`cited` unit ids)
    first, since another version's copy of the same sentences would say them twice."""
    cited_passages = {u.passage_index for own in units for u in own if u.uid in cited}
    order = sorted(range(len(passages)), key=lambda i: (i not in cited_passages, i))
    for index in order:
        passage = passages[index]
        if not wanted(passage):
            continue
        if not drugs & set(drug_names(f"{passage.provenance.title} {passage.text}")):
            continue
        yield passage, units[index] if index < len(units) else []
