"""The intervals and the paired test behind eval's interval, compare --evals and the learning tables."""

import json
import math
import random

import pytest

from tinyr1.infra.errors import TinyR1Error
from tinyr1.tasks.scoring import paired_evals
from tinyr1.tasks.statistics import mcnemar_exact_p, paired_comparison, wilson_interval


def test_wilson_interval_matches_the_closed_form_and_behaves_at_the_edges():
    low, high = wilson_interval(412, 1000)
    assert (round(low, 4), round(high, 4)) == (0.3819, 0.4428)
    none_right = wilson_interval(0, 32)
    assert none_right[0] == 0.0 and none_right[1] == pytest.approx(1.96 ** 2 / (32 + 1.96 ** 2), abs=1e-3)
    assert wilson_interval(32, 32)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # Four times the questions, about half the width.
    small, large = wilson_interval(40, 100), wilson_interval(400, 1000)
    assert (large[1] - large[0]) / (small[1] - small[0]) == pytest.approx(1 / math.sqrt(10), rel=0.05)


def test_wilson_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng, p, n = random.Random(0), 0.4, 200
    covered = sum(low <= p <= high for low, high in
                  (wilson_interval(sum(rng.random() < p for _ in range(n)), n) for _ in range(2000)))
    assert 0.93 <= covered / 2000 <= 0.97


def test_exact_mcnemar_p_value():
    # 2 * P(X <= 6) for X ~ Binomial(22, 1/2)
    assert mcnemar_exact_p(16, 6) == pytest.approx(2 * sum(math.comb(22, k) for k in range(7)) / 2 ** 22)
    assert mcnemar_exact_p(16, 6) == mcnemar_exact_p(6, 16)
    assert mcnemar_exact_p(0, 0) == 1.0 and mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 2 ** 10)
    assert mcnemar_exact_p(400, 300) < 1e-3  # large counts: no overflow, a clear difference


def test_paired_comparison_reproduces_newcombes_published_interval():
    # Fagerland, Lydersen and Laake, "Statistical Analysis of Contingency Tables", ch. 8 (Cavo et al., 2012):
    # 59 both, 6 first only, 16 second only, 80 neither -> difference 0.0621, 95% CI 0.0046 to 0.1186.
    before = [True] * 59 + [True] * 6 + [False] * 16 + [False] * 80
    after = [True] * 59 + [False] * 6 + [True] * 16 + [False] * 80
    c = paired_comparison(before, after)
    assert (c["both_right"], c["right_to_wrong"], c["wrong_to_right"], c["both_wrong"]) == (59, 6, 16, 80)
    assert c["difference"] == pytest.approx(10 / 161)
    assert c["ci95"] == pytest.approx((0.0046, 0.1186), abs=1e-4)
    swapped = paired_comparison(after, before)
    assert swapped["ci95"] == pytest.approx((-0.1186, -0.0046), abs=1e-4)


def test_pairing_is_tighter_than_two_independent_intervals():
    # The same 1000 questions, 20 more right after, all other verdicts unchanged: the two accuracies' intervals
    # overlap, the paired interval does not reach 0.
    before = [i < 400 for i in range(1000)]
    after = [i < 420 for i in range(1000)]
    c = paired_comparison(before, after)
    assert wilson_interval(420, 1000)[0] < wilson_interval(400, 1000)[1]
    assert c["ci95"][0] > 0 and c["p_value"] < 1e-5
    with pytest.raises(ValueError):
        paired_comparison([True], [True, False])


def _eval_dir(path, rows):
    path.mkdir()
    (path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_paired_evals_scores_again_and_refuses_other_questions(tmp_path):
    right, wrong = "<reasoning>\n1 + 2 = 3\n</reasoning>\n<answer>\n3\n</answer>", "<answer>\n4\n</answer>"

    def rows(texts):  # with a stale verdict that must not be read: the completion is scored again
        return [{"question": f"q{i}", "answer": "3", "completion": t, "correct_strict": True}
                for i, t in enumerate(texts)]

    a = _eval_dir(tmp_path / "a", rows([wrong, wrong, right, wrong]))
    b = _eval_dir(tmp_path / "b", rows([right, right, wrong, wrong]))
    c = paired_evals(a, b)
    assert (c["wrong_to_right"], c["right_to_wrong"], c["both_wrong"], c["both_right"]) == (2, 1, 1, 0)
    other = _eval_dir(tmp_path / "c", rows([right, right, right]))
    with pytest.raises(TinyR1Error, match="not the same questions .4 questions against 3"):
        paired_evals(a, other)
    with pytest.raises(TinyR1Error, match="no samples.jsonl"):
        paired_evals(a, tmp_path / "absent")
