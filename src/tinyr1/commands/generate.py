"""``tinyr1 generate``: chat with a model — one prompt, or a multi-turn loop — with streamed tokens in a terminal.

    tinyr1 generate --model_name_or_path smollm2-135m-instruct --prompt "What is 12 * 7?"
    tinyr1 generate --model_name_or_path outputs/my-run --interactive        # 'exit' or Ctrl-D to leave

Accepts every model form ``train`` and ``eval`` accept (hub id, folder, .gguf, the offline alias, a run folder, a
LoRA adapter via ``--adapter``). The default system prompt is the GRPO recipe's; ``--system_prompt ""`` drops it.
"""

from __future__ import annotations

import argparse
import sys

import torch

from tinyr1.infra.device import configure_cpu
from tinyr1.infra.errors import TinyR1Error, one_line_errors
from tinyr1.infra.naming import command_line, setting
from tinyr1.infra.options import parse_command
from tinyr1.models.generation import stop_token_ids
from tinyr1.models.loading import check_context, load_model_and_tokenizer, local_config
from tinyr1.tasks.answers import SYSTEM_PROMPT


def reply(model, tokenizer, messages: list[dict], max_new_tokens: int, temperature: float, stream: bool,
          echo: bool = True) -> str:
    """The model's next turn; streamed to stdout as it comes (``stream``), else printed whole (``echo``)."""
    from transformers import TextStreamer


    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(next(model.parameters()).device)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else \
        {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if stream else None
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=stop_token_ids(model, tokenizer), streamer=streamer, **sampling)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    if not stream and echo:
        print(text, flush=True)
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyr1 generate", description="Chat with a model using its chat template.")
    p.add_argument("--model_name_or_path", required=True, help="any model form train and eval accept")
    p.add_argument("--adapter", help="a LoRA adapter folder to apply on top")
    p.add_argument("--prompt", help="one question; without it (or with --interactive) read turns from stdin")
    p.add_argument("--interactive", action="store_true", help="multi-turn chat until 'exit' or end of input")
    p.add_argument("--max_new_tokens", type=int, default=256, help="tokens per reply (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy (default), >0 to sample")
    p.add_argument("--system_prompt", default=SYSTEM_PROMPT, help="system prompt (default: the recipe's; '' for none)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling")

    return one_line_errors(p, "tinyr1 generate")


def parse_args(argv: list[str] | None = None, *, values: dict | None = None,
               caller: str | None = None) -> argparse.Namespace:
    args = parse_command(build_parser(), argv, values, caller)
    if not args.prompt and not args.interactive:
        raise TinyR1Error(f"give {setting('prompt')} TEXT or {setting('interactive')}")
    check_context(local_config(args.model_name_or_path), args.model_name_or_path,
                  [(setting("max_new_tokens"), args.max_new_tokens)])
    return args


def load_chat_model(args: argparse.Namespace):
    """The model (where this process runs models: its GPU, else the CPU; in eval mode) and its tokenizer, which must
    have a chat template."""
    model, tokenizer = load_model_and_tokenizer(args.model_name_or_path, adapter=args.adapter)
    model.eval()
    if not tokenizer.chat_template:
        raise TinyR1Error(f"{args.model_name_or_path}: the tokenizer has no chat template; use an instruct model")
    return model, tokenizer


@command_line
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    configure_cpu()
    torch.manual_seed(args.seed)
    model, tokenizer = load_chat_model(args)
    stream = sys.stdout.isatty()
    messages = [{"role": "system", "content": args.system_prompt}] if args.system_prompt else []
    if args.prompt:
        messages.append({"role": "user", "content": args.prompt})
        messages.append({"role": "assistant",
                         "content": reply(model, tokenizer, messages, args.max_new_tokens, args.temperature, stream)})
    if not args.interactive:
        return 0
    while True:
        try:
            line = input("you> " if sys.stdin.isatty() else "")
        except EOFError:
            break
        except UnicodeDecodeError:
            raise TinyR1Error("stdin: not UTF-8 text; type or pipe UTF-8") from None
        if line.strip().lower() in ("exit", "quit"):
            break
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        if not stream:
            print("assistant> ", end="", flush=True)
        messages.append({"role": "assistant",
                         "content": reply(model, tokenizer, messages, args.max_new_tokens, args.temperature, stream)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
