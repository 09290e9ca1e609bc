"""``tinyr1 train --eval_before_after true``: the evaluation before and after training, then the story a run ends
with (the comparison on the tutorial's question and the report)."""

from __future__ import annotations

import logging

from tinyr1.evaluation.compare import compare
from tinyr1.evaluation.evaluate import evaluate
from tinyr1.evaluation.report import eval_table, write_report
from tinyr1.infra.files import read_json
from tinyr1.models.whole_weights import is_partitioned, process_alone
from tinyr1.run_folder.folder import RunDir

logger = logging.getLogger(__name__)


def evaluate_stage(script, run: RunDir, trainer, tokenizer, stage: str, source: str) -> None:
    """The held-out evaluation of the trainer's model into ``eval/<stage>``, on the main process. Every process calls
    it. Where the weights are whole in memory, the model in memory is evaluated on the device the trainer placed it
    on. Under ZeRO-3 (partitioned weights) the main process evaluates ``source`` instead — the starting model before,
    the saved final model after — loaded whole on its device: a partitioned model's forward is a collective that
    the other processes would not join (seen on two CPU processes: the evaluation hangs or its broadcast fails)."""
    output = run.path / "eval" / stage
    options = dict(dataset_name=script.dataset_name, split=script.eval_split, limit=script.eval_limit,
                   max_new_tokens=script.eval_max_new_tokens, system_prompt=script.system_prompt, output_dir=output,
                   dataset_options=script.dataset_options)
    if not run.main:
        return
    if is_partitioned(trainer.model):
        with process_alone():
            evaluate(source, **options)
    else:
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()
        evaluate(model=model, tokenizer=tokenizer, **options)
        model.train(was_training)
    run.record()


def finish_story(script, model_args, run: RunDir) -> None:
    """After the final save: the tutorial's question to both models (compare.md), the report, the before/after
    table printed."""
    # as long as the evaluation's answers (eval_max_new_tokens), so a short run ends without a long greedy ramble
    with process_alone():  # the main process alone, also after a ZeRO-3 run
        compare(model_args.model_name_or_path, str(run.path), output=run.path / "compare.md",
                max_new_tokens=script.eval_max_new_tokens, system_prompt=script.system_prompt)
    report = write_report(run.path)
    run.record()
    metrics = (read_json(run.path / "eval" / stage / "metrics.json") for stage in ("before", "after"))
    logger.info("\n".join(eval_table(*metrics)))
    logger.info(f"report: {report}")
