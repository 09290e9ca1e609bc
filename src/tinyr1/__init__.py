"""tinyr1: DeepSeek-R1-style GRPO reasoning training on small instruct models.

The package is laid out as the pipeline it runs: ``data`` (load and prepare) -> ``rewards`` (score) ->
``models`` (load and place) -> ``train`` (GRPO) -> ``evaluate`` / ``compare`` / ``report`` (measure),
with ``sft``, ``generate`` and ``doctor`` beside it. ``cli`` dispatches ``tinyr1 <command>`` to them.
"""

__version__ = "0.1.0"
