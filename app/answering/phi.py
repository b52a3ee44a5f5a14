"""A conservative detector of identifiers in free text (HIPAA Safe Harbor style).

Used only for routing: a question it flags is never sent to an endpoint that is not
allowed to see PHI. False positives cost a little latency; false negatives could leak,
so patterns lean wide.
"""

from __future__ import annotations

import re

_PATTERNS = {
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "phone": re.compile(r"(?<!\d)(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "record number": re.compile(r"\b(?:mrn|medical record|member id|account|acct)\b[\s#:]*\w*\d",
                                re.IGNORECASE),
    "birth date": re.compile(r"\b(?:dob|d\.o\.b|born|birth ?date|date of birth)\b", re.IGNORECASE),
    "full date": re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b"),
    "named person": re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr)\.?\s+[A-Z][a-z]+"),
    "address": re.compile(r"\b\d{1,5}\s+\w+\s+(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr)\b",
                          re.IGNORECASE),
}


def phi_kinds(text: str) -> list[str]:
    """Which kinds of identifier `text` seems to contain (empty: none found)."""
    return [kind for kind, pattern in _PATTERNS.items() if pattern.search(text)]
