"""`bert_intent.parts`' readings that need no trained model (the command itself: tests/test_rasa_cli.py)."""

from bert_intent.parts import per_intent_mean


def test_the_per_intent_mean_counts_every_intent_equally_whatever_its_share() -> None:
    truth = ["music"] * 8 + ["alarm", "weather"]
    predicted = ["music"] * 8 + ["music", "weather"]
    assert per_intent_mean(truth, predicted) == (1.0 + 0.0 + 1.0) / 3  # accuracy: 0.9
    assert per_intent_mean(truth, ["news"] * 10) == 0.0  # an intent no message has is not averaged in
