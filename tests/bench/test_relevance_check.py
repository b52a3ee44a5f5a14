"""bench/relevance_check.py on hand-made retrievals with known answers: the label's dose
sentence is right evidence and accepted; a guideline passage about another drug is
wrong evidence and rejected."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from bench import relevance_check
from retrieval.models import Passage, Provenance


def _passage(pid: str, text: str, source: str, title: str, section: list[str]) -> Passage:
    return Passage(id=pid, text=text, score=0.9, provenance=Provenance(
        doc_id=pid, title=title, source_file=source, doc_type="label",
        section_path=section, char_start=0, char_end=len(text)))


def test_counts_right_and_wrong_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    dose = _passage("a", "The recommended starting dose of LIPITOR is 10 or 20 mg once daily.",
                    "drug-labels/fda-spl/lipitor-orig.xml", "LIPITOR (atorvastatin calcium)",
                    ["2 DOSAGE AND ADMINISTRATION", "2.1 Hyperlipidemia and Mixed Dyslipidemia"])
    other = _passage("b", "Hydroxyurea should be offered to infants 9 months of age and older.",
                     "guidelines/ngc/ngc-10565.xml", "Sickle cell disease", ["Recommendations"])
    cache = tmp_path / "drafts.pkl"
    cache.write_bytes(pickle.dumps({"label-atorva-start": ([dose, other], None, None)}))
    monkeypatch.setattr(sys, "argv", ["relevance_check", "--cache", str(cache)])
    relevance_check.main()
    out = capsys.readouterr().out
    assert "right evidence accepted: 1/1" in out
    assert "off-gold passages accepted: 0/1" in out
