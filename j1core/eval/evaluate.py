"""Run a judge over a benchmark, both orders of every pair, and write judgments.jsonl, report.json, report.md.

    python generate.py judge --model smollm2-135m-instruct --benchmark llmbar --subset Natural --out runs/eval
    python -m pytest tests/eval/test_evaluate.py

Pairwise formats judge (x, chosen, rejected) and (x, rejected, chosen); pointwise judges each response
alone. Every prompt gets --samples completions from the rollout engine (greedy at --temperature 0).
With --forced-verdict (pairwise only) the reasoning is capped at --max-think-tokens, "</think>\\n<answer>[["
is appended, and one more forward picks the verdict: the larger of the A and B logits when greedy, else a
sample from those two alone. The output is then recorded as reasoning + the canonical answer, so it parses.

judgments.jsonl holds one line per (pair, order or response, sample): the full output text (with the
pre-opened "<think>"), finish_reason, new_tokens, the parse (verdict, scores, winner) and correct; forced
verdicts add p_a, the probability of A against B at temperature 1. The file is the resume point: items are
written a chunk at a time and flushed; a rerun with the same --out skips every key already there (a
truncated last line is cut off) and refuses to mix runs whose settings differ (judge_config.json).
Sampled runs draw each chunk with its own seed, so an interrupted sampled run is not bit-identical to an
uninterrupted one; greedy runs are. Metric definitions: j1core/eval/metrics.py.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from j1core.data.benchmarks import BENCHMARKS, load_benchmark
from j1core.data.pairs import load_pairs, stable_hash
from j1core.eval.metrics import HEADLINE, METRICS, compute_report
from j1core.judge.prompts import FORMATS, OPEN_THINK, forced_suffix, is_pairwise, judge_prompt_ids, render_answer
from j1core.judge.rewards import judged_winner, parse_judgment
from j1core.runlog import progress_bar

SOURCES = BENCHMARKS + ("builtin", "jsonl")
# Settings that change what a judgment is; resuming with a different value would mix two evaluations.
RUN_IDENTITY = ("model", "benchmark", "data", "format", "samples", "temperature", "top_p", "max_new_tokens",
                "forced_verdict", "max_think_tokens", "seed")


def add_judge_args(parser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True, help="local HF directory or the alias smollm2-135m-instruct")
    model.add_argument("--model-cache", default=None, help="cache of the dequantized bundled model")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    model.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="weights dtype (default: fp32)")
    data = parser.add_argument_group("data")
    data.add_argument("--benchmark", required=True, choices=SOURCES,
                      help="benchmark adapter; builtin = j1's held-out pairs; jsonl = a pairs file (--data)")
    data.add_argument("--data", default=None, help="benchmark directory/file (default ../shared/data/...)")
    data.add_argument("--subset", default=None, help="only this subset (benchmark subset or Pair.category)")
    data.add_argument("--limit", type=int, default=None, help="judge a seeded sample of N pairs")
    judge = parser.add_argument_group("judge")
    judge.add_argument("--format", default="pairwise", choices=FORMATS, help="judge format (default: pairwise)")
    judge.add_argument("--samples", type=int, default=1, help="k samples per prompt, for SC@k / Mean-Score@k")
    judge.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    judge.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (1 = off)")
    judge.add_argument("--max-new-tokens", type=int, default=512, help="completion cap (default: 512)")
    judge.add_argument("--forced-verdict", action="store_true",
                       help="cap the reasoning, force the answer tag, pick A or B from the next-token logits")
    judge.add_argument("--max-think-tokens", type=int, default=0,
                       help="reasoning tokens before the verdict is forced (default: 0)")
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="output dir: judgments.jsonl, report.json, report.md")
    run.add_argument("--seed", type=int, default=0, help="sampling, --limit, scored order, bootstrap")
    run.add_argument("--max-batch-tokens", type=int, default=65536, help="token budget of one batch")
    run.add_argument("--chunk-size", type=int, default=32, help="prompts generated and saved at a time")
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def check_args(args) -> None:
    if args.samples < 1:
        raise ValueError("--samples must be at least 1")
    if args.samples > 1 and args.temperature == 0:
        raise ValueError("--samples > 1 needs --temperature > 0: greedy samples are identical")
    if args.benchmark == "jsonl" and not args.data:
        raise ValueError("--benchmark jsonl needs --data PATH (a pairs file)")
    if args.forced_verdict and args.format != "pairwise":  # scores_verdict's verdict follows its scores
        raise ValueError("--forced-verdict decodes a verdict right after the reasoning: use --format pairwise")
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")


# ---------------------------------------------------------------- pairs and prompts

def load_eval_pairs(benchmark: str, data=None, subset=None, limit=None, seed=0):
    """The pairs to judge: a subset, then a seeded sample of `limit` pairs kept in file order."""
    if benchmark == "jsonl":
        pairs = [p for p in load_pairs(data) if subset in (None, p.category, p.source)]
    elif benchmark == "builtin":
        from j1core.data.builtin import builtin_pairs

        pairs = [p for p in builtin_pairs(split="heldout") if subset in (None, p.category, p.source)]
    else:
        pairs = load_benchmark(benchmark, data, subset)
    if not pairs:
        raise ValueError(f"no pairs in benchmark {benchmark!r} (data={data!r}, subset={subset!r})")
    if limit is not None and limit < len(pairs):
        keep = sorted(random.Random(f"j1-eval-limit:{seed}").sample(range(len(pairs)), limit))
        pairs = [pairs[i] for i in keep]
    return pairs


@dataclass
class JudgeItem:
    """One judge prompt: a pair in one order (pairwise) or one of its responses (pointwise)."""
    key: str
    pair_id: str
    source: str
    category: str | None
    order: int | None      # 0: chosen is A, 1: chosen is B; None for pointwise
    response: str | None   # "chosen" / "rejected" for pointwise; None for pairwise
    gold: str | None
    ids: list[int]


def build_items(pairs, fmt: str, tokenizer) -> list[JudgeItem]:
    items = []
    for p in pairs:
        if is_pairwise(fmt):
            for order, (a, b) in enumerate(((p.chosen, p.rejected), (p.rejected, p.chosen))):
                ids = judge_prompt_ids(tokenizer, fmt, p.prompt, a, b)
                items.append(JudgeItem(f"{p.id}|o{order}", p.id, p.source, p.category, order, None, "AB"[order],
                                       ids))
        else:
            for response, text in (("chosen", p.chosen), ("rejected", p.rejected)):
                ids = judge_prompt_ids(tokenizer, fmt, p.prompt, text)
                items.append(JudgeItem(f"{p.id}|{response}", p.id, p.source, p.category, None, response, None,
                                       ids))
    return items


def judgment_record(item: JudgeItem, sample: int, fmt: str, output: dict) -> dict:
    """One judgments.jsonl line: the output (text, finish_reason, new_tokens, ...) with its parse."""
    judgment = parse_judgment(fmt, output["text"])
    winner = judged_winner(fmt, judgment)
    return {"key": f"{item.key}|{sample}", "pair_id": item.pair_id, "source": item.source,
            "category": item.category, "order": item.order, "response": item.response, "sample": sample,
            "gold": item.gold, **output, "parsed": judgment.parsed, "verdict": judgment.verdict,
            "score_a": judgment.score_a, "score_b": judgment.score_b, "score": judgment.score, "winner": winner,
            "correct": None if item.gold is None else float(winner == item.gold)}


# ---------------------------------------------------------------- judgments file (the resume point)

def read_judgments(path: Path) -> list[dict]:
    """Records of a judgments file; an unterminated last line (an interrupted write) is cut off the file."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        with open(path, "r+b") as handle:
            handle.truncate(len(raw))
    records = []
    for line_no, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{line_no}: not a JSON judgment record ({err.msg})") from None
        if not isinstance(record, dict) or "key" not in record:
            raise ValueError(f"{path}:{line_no}: field 'key' missing from the judgment record")
        records.append(record)
    return records


def append_judgments(path: Path, records) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        handle.flush()


def check_run_identity(out_dir: Path, identity: dict) -> None:
    """Write judge_config.json, or refuse when the one already in out_dir names different settings."""
    path = out_dir / "judge_config.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        for name, value in identity.items():
            if saved.get(name) != value:
                raise ValueError(f"{path}: field {name!r} is {saved.get(name)!r} but this run has {value!r}; "
                                 "use another --out, or delete the directory to start over")
    else:
        path.write_text(json.dumps(identity, indent=1) + "\n")


# ---------------------------------------------------------------- judges: prompts -> outputs

def free_judge(engine, tokenizer, max_new_tokens, temperature, top_p):
    """judge(items, n, seed) -> per item, n outputs, by free generation."""
    def judge(items, n, seed):
        completions = engine.generate([it.ids for it in items], n=n, max_new_tokens=max_new_tokens,
                                      temperature=temperature, top_p=top_p, seed=seed)
        return [[{"text": OPEN_THINK + tokenizer.decode(c.token_ids, skip_special_tokens=True),
                  "finish_reason": c.finish_reason, "new_tokens": len(c.token_ids)} for c in per_item]
                for per_item in completions]
    return judge


def clean_reasoning(text: str) -> str:
    """Reasoning kept before a forced answer: up to any "</think>" the model wrote, without think tags."""
    return text.split("</think>")[0].replace("<think>", "")


def forced_judge(engine, model, tokenizer, fmt, max_think_tokens, temperature, top_p, max_batch_tokens):
    """judge(items, n, seed) -> outputs whose verdict is chosen among the letters A/B after the suffix."""
    letters = [tokenizer.encode(letter, add_special_tokens=False) for letter in ("A", "B")]
    if any(len(ids) != 1 for ids in letters):
        raise ValueError(f"--forced-verdict needs A and B to be single tokens, got {letters}")
    letter_ids = [ids[0] for ids in letters]
    suffix_ids = tokenizer.encode(forced_suffix(fmt), add_special_tokens=False)

    def judge(items, n, seed):
        if max_think_tokens > 0:
            completions = engine.generate([it.ids for it in items], n=n, max_new_tokens=max_think_tokens,
                                          temperature=temperature, top_p=top_p, seed=seed)
            reasoning = [[tokenizer.decode(c.token_ids, skip_special_tokens=True) for c in per_item]
                         for per_item in completions]
        else:
            reasoning = [[""] * n for _ in items]
        texts = [clean_reasoning(t) for per_item in reasoning for t in per_item]
        sequences = [items[i // n].ids + tokenizer.encode(t, add_special_tokens=False) + suffix_ids
                     for i, t in enumerate(texts)]
        logits = next_token_logits(model, sequences, letter_ids, max_batch_tokens)
        picks = pick_letters(logits, temperature, seed)
        outputs = []
        for i, (text, pick) in enumerate(zip(texts, picks)):
            probs = torch.softmax(logits[i].float(), dim=-1)
            outputs.append({"text": OPEN_THINK + text + render_answer(fmt, verdict="AB"[pick]),
                            "finish_reason": "forced", "new_tokens": len(sequences[i]) - len(items[i // n].ids),
                            "p_a": round(float(probs[0]), 6)})
        return [outputs[i * n:(i + 1) * n] for i in range(len(items))]
    return judge


def pick_letters(logits, temperature: float, seed: int) -> list[int]:
    """Index of the verdict per row: argmax when greedy, else a sample from softmax(logits / T)."""
    if temperature == 0:
        return logits.argmax(dim=-1).tolist()
    generator = torch.Generator().manual_seed(seed)
    probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1).tolist()


@torch.inference_mode()
def next_token_logits(model, sequences, token_ids, max_batch_tokens):
    """Logits of `token_ids` after each whole sequence: [len(sequences), len(token_ids)], float32 on CPU.

    Rows are right-padded, so the last real position of each row sees only its own tokens; only the few
    asked-for rows of the LM head are applied (no tokens x vocab logits)."""
    device = next(model.parameters()).device
    head = model.get_output_embeddings().weight[token_ids]  # [C, H]
    out = torch.empty(len(sequences), len(token_ids))
    by_length = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    start = 0
    while start < len(by_length):
        end = start + 1
        while end < len(by_length) and len(sequences[by_length[end]]) * (end - start + 1) <= max_batch_tokens:
            end += 1
        rows = by_length[start:end]
        width = max(len(sequences[i]) for i in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, i in enumerate(rows):
            input_ids[r, :len(sequences[i])] = torch.tensor(sequences[i])
            mask[r, :len(sequences[i])] = 1
        hidden = model.get_decoder()(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        last = hidden[torch.arange(len(rows), device=device), mask.sum(1).to(device) - 1]
        out[rows] = (last.to(head.dtype) @ head.T).float().cpu()
        start = end
    return out


# ---------------------------------------------------------------- the loop, resumable

def judge_items(items, judge, fmt: str, path: Path, samples: int = 1, chunk_size: int = 32, seed: int = 0,
                progress: bool = True) -> int:
    """Judge every item not yet complete in `path`, chunk by chunk; returns how many items were judged."""
    done = {r["key"] for r in read_judgments(path)}
    todo = [it for it in items if any(f"{it.key}|{s}" not in done for s in range(samples))]
    bar = progress_bar(len(items), len(items) - len(todo), "judge", progress, unit="prompt")
    right = []
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start:start + chunk_size]
        outputs = judge(chunk, samples, stable_hash("j1-eval", seed, chunk[0].key) % 2**31)
        records = [judgment_record(it, s, fmt, out) for it, per_item in zip(chunk, outputs)
                   for s, out in enumerate(per_item) if f"{it.key}|{s}" not in done]
        append_judgments(path, records)
        right += [r["correct"] for r in records if r["correct"] is not None]
        parsed = sum(r["parsed"] for r in records)
        bar.update(len(chunk))
        bar.set_postfix(acc=f"{sum(right) / max(len(right), 1):.3f}" if right else "-",
                        parsed=f"{parsed}/{len(records)}")
    bar.close()
    return len(todo)



# ---------------------------------------------------------------- report

def build_report(records, pairs, fmt: str, seed: int, bootstrap: int, meta: dict) -> dict:
    """Metrics over the judgments of `pairs` (a bigger file from an earlier run may hold more)."""
    wanted = {p.id for p in pairs}
    mine = [r for r in records if r["pair_id"] in wanted]
    metrics = compute_report(mine, fmt, seed=seed, bootstrap=bootstrap)
    length_capped = sum(r.get("finish_reason") == "length" for r in mine)
    meta = {**meta, "pairs": len(wanted), "judgments": len(mine),
            "length_capped_rate": length_capped / max(len(mine), 1)}
    return {"meta": meta, **metrics}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def metrics_table(title: str, summaries: dict, names) -> list[str]:
    lines = [f"### {title}", "", "| | pairs | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for label, summary in summaries.items():
        lines.append(f"| {label} | {summary['pairs']} | " + " | ".join(_pct(summary[n]) for n in names) + " |")
    return lines + [""]


def headline_table(title: str, summary: dict) -> list[str]:
    lines = [f"## {title}", "", "| metric | % | 95% CI |", "|---|---|---|"]
    for name in METRICS:
        ci = summary.get("ci95", {}).get(name)
        interval = f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
        lines.append(f"| {name} | {_pct(summary[name])} | {interval} |")
    lines.append(f"| flip_pairs (flip-rate denominator) | {summary['flip_pairs']} | |")
    return lines + [""]


def render_markdown(report: dict) -> str:
    meta = report["meta"]
    k = report["samples"]
    lines = [f"# Judge report: {meta['benchmark']}" + (f" ({meta['subset']})" if meta.get("subset") else ""), "",
             f"model `{meta['model']}`, format `{report['format']}`, {meta['pairs']} pairs, {meta['judgments']} "
             f"judgments, k={k}, temperature {meta['temperature']}, forced verdict {meta['forced_verdict']}"
             + (f" (think {meta['max_think_tokens']} tokens)" if meta["forced_verdict"] else
                f", max {meta['max_new_tokens']} new tokens (capped: {_pct(meta['length_capped_rate'])}%)"),
             f"wall time {meta['wall_s']:.0f} s, seed {meta['seed']}.", "",
             ("accuracy scores one seeded random order per pair; consistent_accuracy needs both orders right; "
              "flip_rate is over pairs with a strict verdict in both orders (definitions: "
              "j1core/eval/metrics.py)."), ""]
    lines += headline_table("Overall" + (f" (single sample, mean over {k} samples)" if k > 1 else ""),
                            report["overall"])
    names = [n for n in METRICS if report["overall"][n] is not None]
    lines += group_sections(report, "", "", names)
    for key, title in (("sc_at_k", f"SC@{k} (majority vote per order)"),
                       ("mean_score_at_k", f"Mean-Score@{k} (mean score per response)")):
        if key in report:
            lines += headline_table(title, report[key])
            lines += group_sections(report, f"{key}_", f"{title}, ", names)
    return "\n".join(lines) + "\n"


def group_sections(report: dict, prefix: str, title: str, names) -> list[str]:
    lines = []
    for group, label in (("by_category", "by category"), ("by_level", "by level")):
        if f"{prefix}{group}" in report:
            lines += metrics_table((title + label).capitalize(), report[f"{prefix}{group}"], names)
    return lines


def write_report(report: dict, out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))


def headline_line(report: dict) -> str:
    o = report["overall"]
    return ", ".join(f"{name} {_pct(o[name])}%" for name in HEADLINE + ("unparseable_rate",))


# ---------------------------------------------------------------- entry point


def run_judge(args) -> dict:
    """`generate.py judge`: judge, resume if interrupted, write the reports; returns report.json's content."""
    from j1core.engine.rollout import RolloutEngine
    from j1core.model import load_model, pick_device

    check_args(args)
    started = time.time()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = {name: getattr(args, name) for name in RUN_IDENTITY}
    check_run_identity(out_dir, identity)
    pairs = load_eval_pairs(args.benchmark, args.data, args.subset, args.limit, args.seed)
    device = str(pick_device(args.device))
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=device, cache_dir=args.model_cache)
    engine = RolloutEngine(model, tokenizer, max_batch_tokens=args.max_batch_tokens, device=device)
    if args.forced_verdict:
        judge = forced_judge(engine, model, tokenizer, args.format, args.max_think_tokens, args.temperature,
                             args.top_p, args.max_batch_tokens)
    else:
        judge = free_judge(engine, tokenizer, args.max_new_tokens, args.temperature, args.top_p)
    items = build_items(pairs, args.format, tokenizer)
    path = out_dir / "judgments.jsonl"
    judged = judge_items(items, judge, args.format, path, args.samples, args.chunk_size, args.seed, args.progress)
    meta = {**identity, "subset": args.subset, "limit": args.limit, "device": device, "dtype": args.dtype,
            "items_judged_this_run": judged, "wall_s": time.time() - started}
    report = build_report(read_judgments(path), pairs, args.format, args.seed, args.bootstrap, meta)
    write_report(report, out_dir)
    print(f"{out_dir}/report.md: {headline_line(report)}")
    return report
