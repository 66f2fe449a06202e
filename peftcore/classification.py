"""Old home of the text-classification task, now peftcore/tasks/text_classification.py: these names stay for
the code that still imports them from here (tests/integration)."""

from .tasks import load_tokenizer, max_positions
from .tasks.text_classification import collate, encode, evaluate, load_model, predict_logits

__all__ = ["collate", "encode", "evaluate", "load_model", "load_tokenizer", "max_positions", "predict_logits"]
