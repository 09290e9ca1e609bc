from ..conftest import ASSETS

TINY = ASSETS / "tiny-qwen2"
# Prompts of different lengths for the tiny model: the fast path's tests pair them so rows need left padding.
PROMPTS = ["What is 2 + 3?", "A farmer has 17 sheep and buys 5 more. How many sheep are there now?",
           "Add 4 and 9.", "Compute 12 - 7, then double it and subtract one."]
