"""Batched text generation with a pretrained GPT-2.

This example holds bugs on purpose: `dllint examples/` reports them.
"""

from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("gpt2")
model = AutoModelForCausalLM.from_pretrained("gpt2")

prompts = ["Hello, how are you", "The weather today is"]
batch = tokenizer(prompts, padding=True, return_tensors="pt")
output = model.generate(batch["input_ids"], max_new_tokens=20)
for text in tokenizer.batch_decode(output, skip_special_tokens=True):
    print(text)
