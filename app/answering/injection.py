"""Passages that try to give the model instructions are kept out of its context.

Retrieved text is data. The prompt says so, but a small model can still be steered by a
planted "ignore previous instructions" line, and verification cannot catch it because
the planted passage would really contain the planted claim. So such passages are
dropped before generation, and the response says which ones.
"""

from __future__ import annotations

import re

_INSTRUCTION = re.compile(
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) "
    r"(?:instructions|rules|prompts?)"
    r"|disregard (?:all |any )?(?:the )?(?:previous|prior|above|system) (?:instructions|prompt)"
    r"|(?:new|updated) (?:system )?instructions?:"
    r"|you are now (?:a|an|the) "
    r"|system prompt"
    r"|<\|?(?:im_start|system)\|?>"
    r"|(?:always|must) (?:answer|respond|reply|say) (?:that|with)",
    re.IGNORECASE,
)


def looks_like_instructions(text: str) -> bool:
    return bool(_INSTRUCTION.search(text))
