"""Problems in intent training data that still train but deserve the bot developer's attention."""

from collections import Counter, defaultdict
from typing import Dict, List, Sequence, Set

MIN_EXAMPLES = 5
MAX_IMBALANCE = 10
_SHOWN = 5  # how many offending examples or intents a warning lists


def training_data_warnings(texts: Sequence[str], intents: Sequence[str]) -> List[str]:
    """One message per kind of problem: conflicting labels, too few examples, strong imbalance."""
    warnings = []
    intents_of: Dict[str, Set[str]] = defaultdict(set)
    for text, intent in zip(texts, intents):
        intents_of[text].add(intent)
    conflicts = {text: sorted(labels) for text, labels in intents_of.items() if len(labels) > 1}
    if conflicts:
        shown = "; ".join(f"'{text}' ({', '.join(labels)})" for text, labels in list(conflicts.items())[:_SHOWN])
        warnings.append(
            f"{len(conflicts)} example(s) appear under more than one intent: {shown}"
            f"{' ...' if len(conflicts) > _SHOWN else ''}. The model cannot learn both labels for the "
            "same text; keep each example under one intent."
        )

    counts = Counter(intents)
    if len(counts) < 2:
        return warnings
    scarce = sorted(intent for intent, count in counts.items() if count < MIN_EXAMPLES)
    if scarce:
        warnings.append(
            f"Intent(s) with fewer than {MIN_EXAMPLES} examples: {_listed(scarce, counts)}. "
            "Add varied examples so the model can learn them."
        )
    largest, largest_count = counts.most_common(1)[0]
    outnumbered = sorted(intent for intent, count in counts.items() if count * MAX_IMBALANCE <= largest_count)
    if outnumbered:
        warnings.append(
            f"Intent '{largest}' has {largest_count} examples, at least {MAX_IMBALANCE}x as many as "
            f"{_listed(outnumbered, counts)}. The model will favour the larger intent; add examples "
            "to the smaller ones or trim the larger one."
        )
    return warnings


def not_joined_warning(names: Sequence[str], symbol: str) -> str:
    """What happens to intents named with the split symbol that are not two known intents joined."""
    return (
        f"Intent(s) {', '.join(map(repr, names[:_SHOWN]))}{' ...' if len(names) > _SHOWN else ''} contain "
        f"'{symbol}' (intent_split_symbol) but are not two intents with examples of their own joined by it, so "
        "they are learned as ordinary intents from their own examples only. To have a multi-intent recognised "
        f"from its parts, join exactly two intents that have examples (e.g. 'book_flight{symbol}ask_weather')."
    )


def _listed(intents: List[str], counts: Counter) -> str:
    shown = ", ".join(f"'{intent}' ({counts[intent]})" for intent in intents[:_SHOWN])
    return shown + (f" and {len(intents) - _SHOWN} more" if len(intents) > _SHOWN else "")
