"""A contraindication the sources state for the patients a question asks about is part of
the answer.

"A woman trying to conceive asks whether she can keep taking atorvastatin" was answered,
every sentence supported, from the label's counselling section (birth control, "discuss
when to stop"), while the retrieved Contraindications section says "Women who are
pregnant or may become pregnant. LIPITOR may cause fetal harm …". True sentences that
leave out the contraindication for the very population asked about are not a safe
answer, and no check on the sentences themselves can see what is missing. So when the
question names a population (pregnant, breastfeeding, pediatric, renal or hepatic
impairment …) and a drug, and a retrieved Contraindications section of that drug's label
names the population, an answer that does not cite those units gets them, quoted
verbatim, as a sentence of its own.
"""

from __future__ import annotations

from app.answering.label_sections import drug_sections
from app.answering.relevance import populations_in
from app.answering.units import Unit
from retrieval.drugs import drug_names
from retrieval.intent import CONTRAINDICATIONS
from retrieval.models import Passage

# Units quoted at most: the section's sentences about the population, not all of it.
MAX_UNITS = 2


def is_contraindication(passage: Passage) -> bool:
    if passage.provenance.section_code == CONTRAINDICATIONS:
        return True
    return any("contraindication" in s.lower() for s in passage.provenance.section_path)


def omitted_contraindication(
    question: str, passages: list[Passage], units: list[list[Unit]], cited: set[str]
) -> list[tuple[Unit, Passage]]:
    """The units of a retrieved Contraindications section of the asked drug's label that
    name the asked population and that the answer (`cited` unit ids) does not cite: of
    the section the answer cites, if it cites one, else of the first retrieved; [] when
    there is none or the answer cites them all."""
    populations = populations_in(question)
    drugs = set(drug_names(question))
    if not populations or not drugs:
        return []
    for passage, own in drug_sections(drugs, passages, units, cited, is_contraindication):
        path = " ".join(passage.provenance.section_path)
        for population in populations:
            hits = [u for u in own if population.named_in(u.reading(passage))][:MAX_UNITS]
            if not hits and own and population.named_in(path):
                # A section headed by the population ("4.3 Pregnancy") is about it whole.
                hits = own[:1]
            if hits:
                return [(u, passage) for u in hits if u.uid not in cited]
    return []
