"""The CPU fast path: trl's GRPO step computed faster on a CPU, behind a version gate (``tinyr1.cpu.touchpoints``)."""
