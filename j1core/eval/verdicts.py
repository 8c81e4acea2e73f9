"""Verdicts on pairs without labels: which response the judge prefers, in each order and overall.

    python generate.py judge --model smollm2-135m-instruct --benchmark jsonl --data pairs.jsonl \
        --forced-verdict --out runs/verdicts
    python -m pytest tests/eval/test_verdicts.py -q

An unlabeled pairs file (JSONL or a JSON list) has per record `prompt` (a string or a list of chat messages,
j1core/data/messages.py), `response_a`, `response_b` and an optional `id` (a string or an integer; default
"line-N"). `generate.py judge --benchmark jsonl` recognises it by its first record (response_a, no chosen)
and judges it as evaluation does, both orders through the resumable judgments.jsonl (with no gold, so no
`correct`), then writes verdicts.jsonl and a summary in report.json / report.md instead of accuracies.

pair_verdict is the one reading of a pair's judgments, shared with the judge API (j1core/judge/api.py):
- pairwise formats: each order's verdict is the majority over its samples (SC@k, j1core/eval/metrics.py),
  mapped back to the responses: "a", "b", "tie" (equal scores or a split vote) or None (nothing parsed).
  agree: both orders name the same response. preference: that response, "tie" when both orders tie, else
  "inconsistent". p_a (forced verdicts): per order, the probability that response a is better, from the
  verdict letters' probabilities. win_a: P(a better) over both orders: the mean of p_a when forced, else of
  each order's share of samples preferring a (a tie or an unparsed sample counts one half).
- pointwise: each response's mean parsed score (score_a, score_b); preference is the higher one, "tie" when
  equal, None when a response has no parsed score.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from j1core.data.messages import conversation_problem
from j1core.data.pairs import DataError, Pair, _kind, _records
from j1core.eval.metrics import majority_vote, mean_score, preference, score_preference
from j1core.eval.report import percent

SOURCE = "unlabeled"
TO_RESPONSE = {"chosen": "a", "rejected": "b", "tie": "tie", None: None}  # metrics speak of chosen = response a


# ---------------------------------------------------------------- the file

def is_unlabeled(path) -> bool:
    """Whether a pairs file's first record is an unlabeled pair (response_a, and no chosen)."""
    try:
        for _, record in _records(Path(path), Path(path).read_bytes()):
            return isinstance(record, dict) and "response_a" in record and "chosen" not in record
    except (DataError, OSError, UnicodeDecodeError):
        return False  # the labelled loader reports what is wrong
    return False


def load_unlabeled(path) -> list[Pair]:
    """The file's pairs as Pairs (chosen = response_a, rejected = response_b, source "unlabeled"); the first
    bad record raises a DataError naming the file, line and field."""
    path = Path(path)
    pairs, first_line_of_id = [], {}
    for line, record in _records(path, path.read_bytes()):
        if isinstance(record, DataError):
            raise record
        if not isinstance(record, dict):
            raise DataError(path, line, "(record)", "not_object", f"expected a JSON object, got {_kind(record)}")
        for field in ("prompt", "response_a", "response_b"):
            value = record.get(field)
            if field not in record:
                raise DataError(path, line, field, "missing_field", "missing")
            if field == "prompt" and isinstance(value, list):
                problem = conversation_problem(value)
                if problem:
                    raise DataError(path, line, *problem)
            elif not isinstance(value, str):
                raise DataError(path, line, field, "wrong_type", f"expected a string, got {_kind(value)}")
            elif not value.strip():
                raise DataError(path, line, field, "empty_text", "empty text")
        pair_id = record.get("id", f"line-{line}")
        if isinstance(pair_id, bool) or not isinstance(pair_id, (str, int)):
            raise DataError(path, line, "id", "wrong_type", f"expected a string or an integer, got {_kind(pair_id)}")
        pair_id = str(pair_id)
        if pair_id in first_line_of_id:
            raise DataError(path, line, "id", "duplicate_id", f"id {pair_id!r} already used on line "
                            f"{first_line_of_id[pair_id]}")
        first_line_of_id[pair_id] = line
        prompt = record["prompt"]
        if isinstance(prompt, list):
            prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
        pairs.append(Pair(pair_id, prompt, record["response_a"], record["response_b"], SOURCE))
    return pairs


# ---------------------------------------------------------------- one pair

def pair_verdict(fmt: str, records) -> dict:
    """The verdict of one pair from its judgment records (both slots, every sample; see the docstring)."""
    if fmt == "pointwise":
        score_a = mean_score([r["score"] for r in records if r["response"] == "chosen"])
        score_b = mean_score([r["score"] for r in records if r["response"] == "rejected"])
        return {"score_a": score_a, "score_b": score_b,
                "preference": TO_RESPONSE[score_preference(score_a, score_b)]}
    orders = [[r for r in records if r["order"] == order] for order in (0, 1)]
    if not all(orders):
        raise ValueError(f"a pairwise verdict needs judgments in both orders, got {len(orders[0])} and "
                         f"{len(orders[1])}")
    verdicts = [TO_RESPONSE[preference(majority_vote([r["winner"] for r in recs]), order)]
                for order, recs in enumerate(orders)]
    agree = verdicts[0] == verdicts[1] and verdicts[0] in ("a", "b")
    pref = verdicts[0] if agree else "tie" if verdicts == ["tie", "tie"] else "inconsistent"
    out = {"verdicts": verdicts, "agree": agree, "preference": pref}
    if all("p_a" in r for recs in orders for r in recs):
        # p_a is the letter A's probability; in order 1 response a is shown as B.
        p0, p1 = (sum(r["p_a"] for r in recs) / len(recs) for recs in orders)
        out["p_a"] = [round(p0, 6), round(1.0 - p1, 6)]
        out["win_a"] = round((p0 + 1.0 - p1) / 2, 6)
    else:
        shares = []
        for order, recs in enumerate(orders):
            prefs = [TO_RESPONSE[preference(r["winner"], order)] for r in recs]
            shares.append(sum(1.0 if p == "a" else 0.0 if p == "b" else 0.5 for p in prefs) / len(prefs))
        out["win_a"] = round(sum(shares) / 2, 6)
    return out


# ---------------------------------------------------------------- the file's verdicts and summary

def verdict_rows(records, pairs, fmt: str) -> list[dict]:
    """One row per pair, in the pairs' order: its id, verdict fields and the judges' outputs."""
    by_pair = {}
    for r in records:
        by_pair.setdefault(r["pair_id"], []).append(r)
    return [{"id": p.id, **pair_verdict(fmt, by_pair[p.id])} for p in pairs]


def summarize_verdicts(rows, records, fmt: str) -> dict:
    """Preference counts, agreement between orders (pairwise) and how often the shown-first response wins."""
    counts = Counter(str(row["preference"]) for row in rows)
    summary = {"pairs": len(rows), "preference": dict(sorted(counts.items())),
               "unparseable_rate": sum(not r["parsed"] for r in records) / max(len(records), 1)}
    if fmt != "pointwise":
        summary["agreement_rate"] = sum(row["agree"] for row in rows) / max(len(rows), 1)
        strict = [(order, v) for row in rows for order, v in enumerate(row["verdicts"]) if v in ("a", "b")]
        summary["first_position_rate"] = (sum(v == ("a", "b")[order] for order, v in strict) / len(strict)
                                          if strict else None)
        summary["mean_win_a"] = sum(row["win_a"] for row in rows) / max(len(rows), 1)
    return summary


def write_verdicts(records, pairs, fmt: str, out_dir: Path, meta: dict) -> dict:
    """verdicts.jsonl, report.json and report.md of an unlabeled run; returns report.json's content."""
    wanted = {p.id for p in pairs}
    mine = [r for r in records if r["pair_id"] in wanted]
    rows = verdict_rows(mine, pairs, fmt)
    (out_dir / "verdicts.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    report = {"meta": {**meta, "unlabeled": True, "pairs": len(pairs), "judgments": len(mine)}, "format": fmt,
              **summarize_verdicts(rows, mine, fmt)}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "report.md").write_text(render_verdicts(report))
    return report


def render_verdicts(report: dict) -> str:
    meta = report["meta"]
    lines = [f"# Judge verdicts: {meta['data']}", "",
             f"model `{meta['model']}`, format `{report['format']}`, {report['pairs']} unlabeled pairs, "
             f"{meta['judgments']} judgments, forced verdict {meta['forced_verdict']}; per pair: verdicts.jsonl.",
             "", "| | % |", "|---|---|"]
    for name in ("agreement_rate", "first_position_rate", "mean_win_a", "unparseable_rate"):
        if name in report:
            lines.append(f"| {name} | {percent(report[name])} |")
    lines += ["", "| preference | pairs |", "|---|---|"]
    lines += [f"| {name} | {n} |" for name, n in report["preference"].items()]
    return "\n".join(lines) + "\n"


def verdicts_line(report: dict) -> str:
    shown = ", ".join(f"{name} {n}" for name, n in report["preference"].items())
    agreement = f"agreement {percent(report['agreement_rate'])}%, " if "agreement_rate" in report else ""
    return f"{report['pairs']} pairs, {agreement}preference: {shown}"
