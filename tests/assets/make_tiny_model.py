"""Build tests/assets/tiny-qwen2: a randomly initialised 2-layer Qwen2 model with a small BPE tokenizer.

Training tests need a real model and tokenizer that load offline in milliseconds; trl's own tests use the same
trick. The tokenizer is byte-level BPE trained on real GSM8K text (so prompts tokenize to sensible lengths) with
ChatML special tokens and a ChatML chat template, like Qwen2.5's.

    python tests/assets/make_tiny_model.py          # reads $TINYR1_GSM8K_DIR (default ../shared/data/gsm8k)
"""

import json
import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

HERE = Path(__file__).resolve().parent
OUT = HERE / "tiny-qwen2"
GSM8K = Path(os.environ.get("TINYR1_GSM8K_DIR") or HERE.parents[2] / "shared" / "data" / "gsm8k")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def texts():
    with (GSM8K / "train.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            yield row["question"]
            yield row["answer"]
    yield "<reasoning>\n</reasoning>\n<answer>\n</answer>\n!!!!"


def main() -> None:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None, chat_template=CHATML)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(fast), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         tie_word_embeddings=True, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         bos_token_id=None,
                         # Larger than the default 0.02, so logits are not all near zero (a uniform distribution
                         # that a LoRA adapter can barely move) and short SFT tests can see the loss fall.
                         initializer_range=0.3)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    model.save_pretrained(OUT)
    fast.save_pretrained(OUT)
    size = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({size / 1024:.0f} KiB, vocab {len(fast)}, {model.num_parameters()} parameters)")


if __name__ == "__main__":
    main()
