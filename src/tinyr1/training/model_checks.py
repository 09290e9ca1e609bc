"""A model and tokenizer handed to a trainer in Python, checked before the run folder is claimed.

- A tokenizer with more tokens than the model has embeddings is another model's tokenizer: refused in one line
  (trl would index past the embeddings, and resizing them would silently change the user's model).
- A model whose every parameter is frozen, with no LoRA to train, would train nothing: refused in one line.
- A pad token equal to eos (the tutorial's ``tokenizer.pad_token = tokenizer.eos_token``) makes a padded prompt look
  finished and masks the real end-of-turn token in the loss, one of the known triggers of its collapse: the
  tokenizer gets a distinct one, said in one line (an added token grows the embeddings by that one row).
"""

from __future__ import annotations

import logging

from tinyr1.infra.errors import TinyR1Error
from tinyr1.models.loading import ensure_pad_token

logger = logging.getLogger(__name__)


def fit_model_and_tokenizer(model, tokenizer, peft_config=None) -> None:
    """Refuse a mismatched or frozen model; give the tokenizer a pad token distinct from eos (module docstring)."""
    if isinstance(model, str) or not hasattr(model, "get_input_embeddings"):
        return  # a name: trl loads it with its own tokenizer
    embeddings = model.get_input_embeddings()
    rows = getattr(getattr(embeddings, "weight", None), "shape", (0,))[0]
    if tokenizer is not None and hasattr(tokenizer, "__len__") and rows and len(tokenizer) > rows:
        raise TinyR1Error(f"processing_class: the tokenizer has {len(tokenizer):,} tokens and the model's embeddings "
                          f"{rows:,} rows: a tokenizer of another model? Pass the tokenizer saved with this model "
                          "(AutoTokenizer.from_pretrained on the model's folder), or resize the model's embeddings "
                          "yourself (model.resize_token_embeddings(len(tokenizer))) if you added the tokens")
    if peft_config is None and not hasattr(model, "peft_config") and \
            not any(p.requires_grad for p in model.parameters()):
        raise TinyR1Error("model: every parameter is frozen (requires_grad False) and there is no peft_config, so "
                          "nothing would train; unfreeze the weights to train (model.requires_grad_(True)) or pass "
                          "peft_config for a LoRA adapter")
    if tokenizer is None or not hasattr(tokenizer, "eos_token_id"):
        return
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    message = ensure_pad_token(tokenizer, model)
    if message:
        logger.info(f"{message}: a pad token equal to eos hides the end of each completion from the loss")
