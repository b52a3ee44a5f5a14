"""The synthetic (Synthea) patient bundles offered by the page's patient picker."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SYNTHEA_DIR = REPO_ROOT / "corpora" / "fhir" / "synthea"

# Synthea names files "<Given>_<Family>_<uuid>.json" and may append digits to names
# ("Reuben954"); neither the uuid nor the digits mean anything to a reader.
_UUID_SUFFIX = re.compile(
    r"_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_NAME_DIGITS = re.compile(r"(?<=[^\W\d_])\d+\b")


def patient_label(stem: str) -> str:
    """'Reuben_Lind_1d03714f-...' -> 'Reuben Lind'."""
    name = _UUID_SUFFIX.sub("", stem)
    name = _NAME_DIGITS.sub("", name.replace("_", " "))
    return " ".join(name.split()) or stem


def list_patient_bundles(directory: Path = SYNTHEA_DIR) -> dict[str, Path]:
    """Display label -> bundle file, sorted by label; labels are made unique."""
    bundles: dict[str, Path] = {}
    if not directory.is_dir():
        return bundles
    for path in sorted(directory.glob("*.json")):
        label = patient_label(path.stem)
        if label in bundles:
            # Two patients with the same name: the uuid's first block tells them apart.
            match = _UUID_SUFFIX.search(path.stem)
            label = f"{label} ({match.group(0)[1:9]})" if match else path.stem
        bundles[label] = path
    return dict(sorted(bundles.items()))


def load_bundle(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        bundle = json.load(handle)
    if not isinstance(bundle, dict):
        raise ValueError(f"{path.name} is not a FHIR Bundle object")
    return bundle
