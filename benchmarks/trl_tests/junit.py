"""Read pytest's JUnit XML into {test id: outcome, first line}, and format the comparison of two variants."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

# A traceback line in tinyr1's source: "/…/src/tinyr1/cpu/shared_prompts.py:83: RuntimeError" or "…py:66: in update".
TINYR1_FRAME = re.compile(r"(?:^|[\s/])(tinyr1/[\w/]+\.py):(\d+)", re.MULTILINE)


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:240]
    return ""


def read_results(path: Path) -> dict[str, dict[str, str]]:
    """Every test case in a JUnit file: outcome ("passed", "failed", "skipped") and, unless passed, why."""
    if not path.exists():
        return {}
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome, message, where = "passed", "", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", first_line(child.get("message")) or first_line(child.text)
                frames = TINYR1_FRAME.findall(child.text or "")
                where = ":".join(frames[-1]) if frames else ""  # the innermost tinyr1 frame
                break
            if child.tag == "skipped":
                outcome, message = "skipped", first_line(child.get("message"))
        results[test_id] = {"outcome": outcome, "message": message, "where": where}
    return results


def counts(results: dict[str, dict[str, str]]) -> str:
    if not results:
        return "not run"
    tally = {"passed": 0, "failed": 0, "skipped": 0}
    for result in results.values():
        tally[result["outcome"]] += 1
    return f"{tally['passed']} / {tally['failed']} / {tally['skipped']}"


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| file | trl: passed / failed / skipped | tinyr1: passed / failed / skipped |", "|---|---:|---:|"]
    for name, variants in results.items():
        lines.append(f"| {name} | {counts(variants['trl'])} | {counts(variants['tinyr1'])} |")
    return "\n".join(lines)


def compare(results: dict[str, dict[str, dict]]) -> str:
    """Tests that pass on trl but not with tinyr1's classes, then tests that fail on plain trl, with why."""
    lines = []
    for name, variants in results.items():
        trl, tinyr1 = variants["trl"], variants["tinyr1"]
        if not (trl and tinyr1):
            continue
        lost = [(test, tinyr1.get(test)) for test, result in trl.items()
                if result["outcome"] == "passed" and (tinyr1.get(test) or {}).get("outcome") != "passed"]
        lines.append(f"\n{name}: {len(lost)} pass on trl but not with tinyr1's classes")
        for test, result in lost:
            outcome, message = (result["outcome"], result["message"]) if result else ("not run", "")
            where = f" (in {result['where']})" if result and result.get("where") else ""
            lines.append(f"  {test}  [{outcome}]{where} {message}")
        gained = [test for test, result in tinyr1.items()
                  if result["outcome"] == "passed" and (trl.get(test) or {}).get("outcome") != "passed"]
        if gained:
            lines.append(f"{name}: {len(gained)} pass with tinyr1's classes but not on trl: {', '.join(gained)}")
    for name, variants in results.items():
        failed = [(test, result["message"]) for test, result in variants["trl"].items()
                  if result["outcome"] == "failed"]
        if failed:
            lines.append(f"\n{name}: {len(failed)} fail on plain trl")
            lines += [f"  {test}  {message}" for test, message in failed]
    return "\n".join(lines)
