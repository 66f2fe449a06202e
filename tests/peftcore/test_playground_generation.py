"""The playground's generation engine: the base model's answers beside the adapter's (the same weights with the
adapter switched off), the text reported while it is written, and sampling settings."""

import pytest
import torch

from peftcore.predict import load_predictor, predict
from peftcore.tasks import get_task
from tests.tiny_models import make_review_answer_file, train_tiny_lora_sft

PROMPTS = ["the film was lovely and superb", "the film was dull and boring", "a third one"]


@pytest.fixture(scope="module")
def predictor(tiny_shape, tmp_path_factory):
    folder = tiny_shape("gemma3")
    pairs = make_review_answer_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")
    adapter = train_tiny_lora_sft(folder, pairs, tmp_path_factory.mktemp("out"), learning_rate=1e-2)
    return folder, load_predictor(folder, adapter)


def test_the_base_models_answers_stream_beside_the_adapters(predictor):
    folder, loaded = predictor
    loaded.runner.batch_size = 2  # two batches: the report covers rows already finished and rows not started
    reports = []
    answers = predict(loaded, PROMPTS, max_new_tokens=8, compare_base=True, on_partial=reports.append)
    assert [set(a) for a in answers] == [{"generation", "base_generation"}] * 3
    base_model, _ = get_task("sft").load_model(folder, [], loaded.tokenizer)
    prompts = [loaded.runner.prompt(p) for p in _examples()]
    assert [a["base_generation"] for a in answers] == loaded.runner.generate(base_model.eval(), prompts, 8)
    assert [a["generation"] for a in answers] != [a["base_generation"] for a in answers]  # the adapter matters
    # the base model's text first, then the adapter's beside the finished base answers, ending on the results
    assert reports[0].keys() == {"base_generations"} and all(len(r[k]) == 3 for r in reports for k in r)
    assert reports[-1] == {
        "base_generations": [a["base_generation"] for a in answers],
        "generations": [a["generation"] for a in answers],
    }


def test_sampling_follows_its_seed_and_greedy_needs_none(predictor):
    _, loaded = predictor
    greedy = [predict(loaded, PROMPTS[:1], max_new_tokens=8)[0]["generation"] for _ in range(2)]
    assert greedy[0] == greedy[1]
    sampled = []
    for _ in range(2):
        torch.manual_seed(7)
        sampled.append(predict(loaded, PROMPTS, max_new_tokens=8, temperature=1.5, top_p=0.9))
    assert sampled[0] == sampled[1] and all(isinstance(a["generation"], str) for a in sampled[0])


def _examples():
    from peftcore.sft import SftExample

    return [SftExample(0, prompt=p, response="-") for p in PROMPTS]
