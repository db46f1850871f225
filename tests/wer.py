"""Word error rate (Levenshtein distance over words / reference words), for accuracy checks."""

from __future__ import annotations


def wer(reference: list[str], hypothesis: list[str]) -> float:
    """Substitutions, deletions and insertions to turn `hypothesis` into `reference`, per reference word."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / max(1, len(reference))
