"""Tiny, randomly initialised models and easy datasets for fast offline tests (shared by all test suites)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

POSITIVE = ("great", "wonderful", "excellent", "brilliant", "lovely", "superb", "delightful", "moving")
NEGATIVE = ("awful", "terrible", "boring", "dreadful", "dull", "painful", "clumsy", "tedious")
SUBJECTS = ("film", "plot", "acting", "story", "script", "movie", "cast", "ending")
# Three sentiment words per sentence: enough signal that even a tiny random model learns it in a few steps.
TEMPLATES = (
    "the {subject} was {a} , {b} and {c}",
    "a {a} {subject} , {b} and {c}",
    "{a} {subject} , truly {b} , {c}",
    "what a {a} , {b} {subject} : {c}",
)


def _copy_tokenizer(folder: Path) -> int:
    """Copy the bundled MiniLM's tokenizer files into folder; its vocabulary size."""
    from peftcore.models import bundled_model_path

    source = bundled_model_path()
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, folder / name)
    return sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))


def make_tiny_bert(folder: Path) -> Path:
    """A tiny random BERT saved as a plain BertModel (like the bundled MiniLM, so AutoModelFor... adds a fresh
    classifier head), with safetensors weights and the bundled MiniLM's real tokenizer. Cached per folder."""
    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import BertConfig, BertModel

    vocab_size = _copy_tokenizer(folder)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=vocab_size,
        max_position_embeddings=512,
        # With BERT's default 0.02 a random [CLS] vector barely depends on the input, so nothing but LoRA
        # could learn; 0.2 gives input-dependent features that every method (and the head alone) can use.
        initializer_range=0.2,
    )
    config.architectures = ["BertModel"]
    with torch.random.fork_rng(devices=[]):  # deterministic weights without disturbing the caller's RNG
        torch.manual_seed(0)
        model = BertModel(config)
    # config.json last: its presence marks the folder as complete for the cache check above.
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


# The other model shapes the method matrix covers. They share the bundled MiniLM's tokenizer (the architecture,
# not the vocabulary, is what a method cares about), told to give only input_ids and attention_mask, as real
# GPT-2, Llama and T5 tokenizers do. [SEP] (102) ends every input, so it serves as T5's end-of-sequence token.
SEP_ID = 102


def _tiny_decoder_or_seq2seq(folder: Path, make_config, model_class_name: str, extra_tokens=()) -> Path:
    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    import torch
    import transformers

    vocab_size = _copy_tokenizer(folder)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config["model_input_names"] = ["input_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    if extra_tokens:  # markers the architecture's real tokenizer holds as single tokens (Gemma's turns)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_tokens)})
        tokenizer.save_pretrained(str(folder))
        vocab_size = len(tokenizer)
    config = make_config(vocab_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = getattr(transformers, model_class_name)(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def make_tiny_gpt2(folder: Path) -> Path:
    from transformers import GPT2Config

    return _tiny_decoder_or_seq2seq(
        folder,
        lambda vocab: GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_inner=64,
            vocab_size=vocab,
            n_positions=128,
            pad_token_id=0,
            initializer_range=0.2,
        ),
        "GPT2LMHeadModel",
    )


def make_tiny_llama(folder: Path) -> Path:
    from transformers import LlamaConfig

    return _tiny_decoder_or_seq2seq(
        folder,
        lambda vocab: LlamaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=vocab,
            max_position_embeddings=128,
            pad_token_id=0,
            initializer_range=0.2,
        ),
        "LlamaForCausalLM",
    )


GEMMA_TURN_TOKENS = ["<start_of_turn>", "<end_of_turn>"]


def make_tiny_gemma3(folder: Path, heads: int = 2, kv_heads: int = 2) -> Path:
    """A tiny random Gemma3ForCausalLM (the bundled Gemma 3 270M's architecture: sliding and full attention
    layers, tied embeddings) whose tokenizer also holds Gemma's turn markers as single tokens. heads > kv_heads:
    grouped-query attention, as the 270M has (4 query heads read each key/value head)."""
    from transformers import Gemma3TextConfig

    return _tiny_decoder_or_seq2seq(
        folder,
        lambda vocab: Gemma3TextConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,  # FourierFT's 1,000 frequencies need 32 x 32 value layers
            head_dim=32 // heads,
            intermediate_size=64,
            vocab_size=vocab,
            max_position_embeddings=128,
            sliding_window=16,
            layer_types=["sliding_attention", "full_attention"],
            pad_token_id=0,
            initializer_range=0.2,
        ),
        "Gemma3ForCausalLM",
        GEMMA_TURN_TOKENS,
    )


def make_tiny_t5(folder: Path) -> Path:
    from transformers import T5Config

    return _tiny_decoder_or_seq2seq(
        folder,
        lambda vocab: T5Config(
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            vocab_size=vocab,
            pad_token_id=0,
            eos_token_id=SEP_ID,
            decoder_start_token_id=0,
            initializer_factor=1.0,
        ),
        "T5ForConditionalGeneration",
    )


def sentiment_rows(rows: int = 64, seed: int = 0) -> list[tuple[str, str]]:
    """Balanced (sentence, label) pairs whose label is given away by its words: "1" positive, "0" negative."""
    rng = random.Random(seed)
    result = []
    for i in range(rows):
        label = "1" if i % 2 == 0 else "0"
        words = POSITIVE if label == "1" else NEGATIVE
        a, b, c = (rng.choice(words) for _ in range(3))
        sentence = rng.choice(TEMPLATES).format(subject=rng.choice(SUBJECTS), a=a, b=b, c=c)
        result.append((sentence, label))
    return result


def make_sentiment_file(path: Path, rows: int = 64, fmt: str = "tsv") -> Path:
    """Write sentiment_rows() with columns sentence and label as tsv, csv, jsonl or json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = sentiment_rows(rows)
    if fmt in ("tsv", "csv"):
        sep = "\t" if fmt == "tsv" else ","
        lines = [f"sentence{sep}label"] + [f"{s}{sep}{label}" for s, label in data]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text(
            "".join(json.dumps({"sentence": s, "label": label}) + "\n" for s, label in data), encoding="utf-8"
        )
    elif fmt == "json":
        path.write_text(json.dumps([{"sentence": s, "label": label} for s, label in data]), encoding="utf-8")
    else:
        raise ValueError(f"unsupported fmt {fmt!r}")
    return path


REVIEW_WORDS = {
    "positive": ("great", "superb", "lovely", "brilliant"),
    "negative": ("awful", "dull", "boring", "tedious"),
}


COLOURS = ("red", "green", "blue", "black", "white", "pink", "grey", "gold")


def make_colour_pairs_file(path: Path, rows: int = 24) -> Path:
    """prompt/response pairs for SFT: "colour i: <a colour>" -> the next colour in COLOURS."""
    lines = [{"prompt": f"colour {i}: {COLOURS[i % 8]}", "response": COLOURS[(i + 1) % 8]} for i in range(rows)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return path


def make_review_answer_file(path: Path, rows: int = 96) -> Path:
    """JSONL rows {review, answer} for the generation tasks: the answer ("positive" or "negative") is given away
    by the review's words, so a tiny model learns to write it in a few epochs."""
    rng, lines = random.Random(0), []
    for i in range(rows):
        answer = "positive" if i % 2 else "negative"
        words = rng.sample(REVIEW_WORDS[answer], 2)
        lines.append(json.dumps({"review": f"the film was {words[0]} and {words[1]}", "answer": answer}))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_preference_file(path: Path, rows: int = 96) -> Path:
    """JSONL rows {review, chosen, rejected}: the review's words give away the right answer ("positive" or
    "negative"), chosen is it and rejected the other, so a tiny model learns to rank them in a few epochs."""
    rng, lines = random.Random(1), []
    for i in range(rows):
        answer, other = ("positive", "negative") if i % 2 else ("negative", "positive")
        words = rng.sample(REVIEW_WORDS[answer], 2)
        record = {"review": f"the film was {words[0]} and {words[1]}", "chosen": answer, "rejected": other}
        lines.append(json.dumps(record))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def store_adapter(job, folder: Path):
    """Zip an adapter folder into the blob store as the job's adapter Artifact (what the runner does)."""
    import io
    import zipfile

    from jobs.models import Artifact
    from jobs.storage import blob_create_from_chunks

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for item in Path(folder).iterdir():
            zf.write(item, item.name)
    blob = blob_create_from_chunks([archive.getvalue()])
    return Artifact.objects.create(
        job=job, kind=Artifact.Kind.ADAPTER, filename="a.zip", blob=blob, size_bytes=blob.size, sha256=blob.sha256
    )


def train_tiny_lora_sft(model: Path, pairs: Path, out: Path, *, epochs: int = 3, batch_size: int = 8, **params) -> Path:
    """A LoRA SFT adapter on review/answer pairs (make_review_answer_file) for a tiny causal model: its folder."""
    from peftcore.events import ListSink
    from peftcore.train import fit

    spec = {
        "task": "sft",
        "model_path": str(model),
        "method": "lora",
        "train_file": str(pairs),
        "text_column": "review",
        "label_column": "answer",
        "output_dir": str(out),
        "params": {"epochs": epochs, "batch_size": batch_size, "max_length": 48, **params},
        "metadata": {"base_model": f"local:{Path(model).name}"},
    }
    return fit(spec, ListSink()).adapter_dir
