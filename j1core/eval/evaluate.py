"""Run a judge over a benchmark, both orders of every pair, and write judgments.jsonl, report.json, report.md.

    python generate.py judge --model smollm2-135m-instruct --benchmark llmbar --subset Natural --out runs/eval
    python -m pytest tests/eval/test_evaluate.py

Pairwise formats judge (x, chosen, rejected) and (x, rejected, chosen); pointwise judges each response
alone (the prompts come from j1core/judge/step.build_prompts, as in training). Every prompt gets --samples
completions from the rollout engine through the trainer's own sampler, j1core/judge/rollout.sample_judgments
(greedy at --temperature 0). With --forced-verdict (pairwise only) the reasoning is capped at
--max-think-tokens, the engine feeds "</think>\\n<answer>[[" and chooses the verdict among A and B alone: the
larger of the two logits when greedy, else a sample from those two. Without reasoning the suffix is
prefilled with the prompt and the letter comes from the prefill's logits. The output is recorded as the
decoded sampled reasoning + the canonical answer with the chosen letter.

judgments.jsonl holds one line per (pair, order or response, sample): the full output text (with the
pre-opened "<think>"), finish_reason ("eos" | "length", "forced" for a forced verdict), new_tokens (after
the prompt, forced ones included), the parse (verdict, scores, winner) and correct; forced verdicts add p_a,
the probability of A against B at temperature 1 (the engine's Completion.choice_logprobs). The file is the
resume point: items are written a chunk at a time and flushed; a rerun with the same --out skips every key
already there (a truncated last line is cut off) and refuses to mix runs whose settings differ
(judge_config.json). Each prompt samples from its own seed (run seed, item key), so what it gets does not
depend on the chunking or on an interruption. A --model path is compared as a path (`DIR/` and `DIR` are one
model); judge_config.json files written before --dtype and --truncate were part of it count as fp32, uncut.
Pairs whose judge prompt does not fit the model's context are refused, or cut with --truncate
(j1core/data/fit.py), before any model call. Metric definitions: j1core/eval/metrics.py; the report's
files: j1core/eval/report.py. A `--benchmark jsonl` file without labels (prompt, response_a, response_b) is
judged the same way and gets verdicts and an agreement summary instead of accuracies: j1core/eval/verdicts.py.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path

from j1core.config import ROLLOUT_DTYPES
from j1core.data.benchmarks import BENCHMARKS, load_benchmark
from j1core.data.fit import context_length, fit_pairs
from j1core.data.formats import parse_field_map
from j1core.data.pairs import load_pairs, stable_hash
from j1core.errors import UserError
from j1core.eval.report import build_report, headline_line, write_report
from j1core.eval.verdicts import is_unlabeled, load_unlabeled, verdicts_line, write_verdicts
from j1core.judge.prompts import FORMATS, OPEN_THINK
from j1core.judge.rollout import SamplingParams, sample_judgments
from j1core.judge.step import build_prompts, judgment_record
from j1core.resume_check import normalised
from j1core.runlog import progress_bar

SOURCES = BENCHMARKS + ("builtin", "builtin_template", "jsonl")
# Settings that change what a judgment is; resuming with a different value would mix two evaluations.
RUN_IDENTITY = ("model", "benchmark", "data", "format", "prompt_style", "samples", "temperature", "top_p",
                "max_new_tokens", "forced_verdict", "max_think_tokens", "seed", "fields", "data_split", "dtype",
                "truncate", "rollout_dtype")
# the value of settings judge_config.json once lacked
ADDED_DEFAULTS = {"fields": None, "data_split": None, "dtype": "fp32", "truncate": False, "rollout_dtype": "model"}


def add_judge_args(parser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True, help="local HF directory or the alias smollm2-135m-instruct")
    model.add_argument("--model-cache", default=None, help="cache of the dequantized bundled model")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    model.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="weights dtype (default: fp32)")
    model.add_argument("--rollout-dtype", default="model", choices=ROLLOUT_DTYPES,
                       help="what the engine judges in: model (the weights' dtype, the default: a result does not "
                            "depend on the CPU), auto (bf16 where this CPU measures it faster), fp32 or bf16")
    data = parser.add_argument_group("data")
    data.add_argument("--benchmark", required=True, choices=SOURCES,
                      help="benchmark adapter; builtin = j1's prompt-held-out pairs; builtin_template = its "
                           "template-held-out pairs; jsonl = a pairs file (--data)")
    data.add_argument("--data", default=None, help="benchmark directory/file (default ../shared/data/...); "
                      "jsonl: a pairs file (JSONL, JSON, Parquet) or a saved HF dataset directory")
    data.add_argument("--fields", default=None,
                      help="jsonl: map other column names, e.g. prompt=question,chosen=response_a,rejected=response_b")
    data.add_argument("--data-split", default=None, help="jsonl: the split of a saved DatasetDict (default: train)")
    data.add_argument("--subset", default=None,
                      help="only this subset (benchmark subset, Pair.category, or a builtin family)")
    data.add_argument("--limit", type=int, default=None, help="judge a seeded sample of N pairs")
    judge = parser.add_argument_group("judge")
    judge.add_argument("--format", default="pairwise", choices=FORMATS, help="judge format (default: pairwise)")
    judge.add_argument("--prompt-style", default="compact",
                       help="compact (j1's prompts), paper (the J1 paper's), paper_plan (plan, execute, verdict), "
                            "or a template file (default: compact)")
    judge.add_argument("--samples", type=int, default=1, help="k samples per prompt, for SC@k / Mean-Score@k")
    judge.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    judge.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (1 = off)")
    judge.add_argument("--max-new-tokens", type=int, default=512, help="completion cap (default: 512)")
    judge.add_argument("--forced-verdict", action="store_true",
                       help="cap the reasoning, force the answer tag, pick A or B from the next-token logits")
    judge.add_argument("--max-think-tokens", type=int, default=0,
                       help="reasoning tokens before the verdict is forced (default: 0)")
    judge.add_argument("--truncate", action="store_true",
                       help="cut pairs too long for the model's context (the longest text loses its end) instead "
                            "of refusing them")
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="output dir: judgments.jsonl, report.json, report.md")
    run.add_argument("--seed", type=int, default=0, help="sampling, --limit, scored order, bootstrap")
    run.add_argument("--max-batch-tokens", type=int, default=65536, help="token budget of one batch")
    run.add_argument("--chunk-size", type=int, default=32, help="prompts generated and saved at a time")
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def check_args(args) -> None:
    """Every judge flag by range, naming the flag (a UserError: one line, exit status 2)."""
    at_least = {"samples": 1, "max_new_tokens": 1, "max_think_tokens": 0, "seed": 0, "max_batch_tokens": 1,
                "chunk_size": 1, "bootstrap": 0, "limit": 1}
    for name, low in at_least.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise UserError(f"--{name.replace('_', '-')}: must be >= {low}, got {value}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UserError(f"--temperature: must be >= 0 (0 = greedy), got {args.temperature}")
    if not (0 < args.top_p <= 1):
        raise UserError(f"--top-p: must be in (0, 1], got {args.top_p}")
    if args.samples > 1 and args.temperature == 0:
        raise UserError("--samples > 1 needs --temperature > 0: greedy samples are identical")
    if args.benchmark == "jsonl" and not args.data:
        raise UserError("--benchmark jsonl needs --data PATH (a pairs file)")
    if args.forced_verdict and args.format != "pairwise":  # scores_verdict's verdict follows its scores
        raise UserError("--forced-verdict decodes a verdict right after the reasoning: use --format pairwise")
    parse_field_map(args.fields)
    if (args.fields or args.data_split) and args.benchmark != "jsonl":
        raise UserError("--fields and --data-split read a --benchmark jsonl file; an adapter knows its columns")


# ---------------------------------------------------------------- pairs and prompts

def load_eval_pairs(benchmark: str, data=None, subset=None, limit=None, seed=0, fields=None, split=None):
    """The pairs to judge: a subset, then a seeded sample of `limit` pairs kept in file order."""
    if benchmark == "jsonl":  # a file without labels (response_a / response_b): j1core/eval/verdicts.py
        loaded = (load_unlabeled(data) if is_unlabeled(data)
                  else load_pairs(data, fields=parse_field_map(fields), split=split))
        pairs = [p for p in loaded if subset in (None, p.category, p.source)]
    elif benchmark in ("builtin", "builtin_template"):
        from j1core.data.builtin import builtin_pairs, family_of

        which = "heldout" if benchmark == "builtin" else "heldout_template"
        pairs = [p for p in builtin_pairs(split=which) if subset in (None, p.category, p.source, family_of(p))]
    else:
        pairs = load_benchmark(benchmark, data, subset)
    if not pairs:
        raise UserError(f"no pairs in benchmark {benchmark!r} (data={data!r}, subset={subset!r})")
    return limit_pairs(pairs, limit, seed)


def limit_pairs(pairs, limit, seed):
    """A seeded sample of `limit` pairs kept in file order (all of them when limit is None or larger)."""
    if limit is None or limit >= len(pairs):
        return pairs
    keep = sorted(random.Random(f"j1-eval-limit:{seed}").sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]


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
    for line_no, line in enumerate(raw.decode("utf-8", errors="replace").split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{line_no}: not a JSON judgment record ({err.msg})") from None
        if not isinstance(record, dict) or "key" not in record:
            raise UserError(f"{path}:{line_no}: field 'key' missing from the judgment record")
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
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: not valid JSON ({err}); use another --out") from None
        if not isinstance(saved, dict):
            raise UserError(f"{path}: expected one JSON object; use another --out")
        for name, value in identity.items():
            old = saved.get(name, ADDED_DEFAULTS.get(name))
            if normalised(old, name) != normalised(value, name):  # DIR/ is DIR
                raise UserError(f"{path}: field {name!r} is {old!r} but this run has {value!r}; "
                                "use another --out, or delete the directory to start over")
    else:
        path.write_text(json.dumps(identity, indent=1) + "\n")


# ---------------------------------------------------------------- judges: prompts -> outputs

def engine_judge(engine, tokenizer, fmt: str, forced: bool, max_new_tokens, max_think_tokens, temperature, top_p):
    """judge(items, n, seed) -> per item, n outputs, sampled on the rollout engine by the trainer's own code
    (j1core/judge/rollout.sample_judgments): free generation, or a forced verdict whose letter the engine
    chooses among A and B. The text is of the tokens sampled; p_a is from the engine's choice distribution."""
    params = SamplingParams(max_new_tokens=max_new_tokens, forced_verdict=forced, max_think_tokens=max_think_tokens,
                            temperature=temperature, top_p=top_p)

    def judge(items, n, seed):
        seeds = [stable_hash("j1-eval", seed, it.key) % (1 << 63) for it in items]
        groups = sample_judgments(engine, tokenizer, [it.ids for it in items], fmt, replace(params, n=n), seeds)
        outputs = []
        for group in groups:
            outputs.append([])
            for s in group:
                out = {"text": OPEN_THINK + s.text, "finish_reason": s.finish_reason, "new_tokens": len(s.token_ids)}
                if s.choice_logprobs is not None:
                    out.update(finish_reason="forced", p_a=round(math.exp(s.choice_logprobs[0]), 6))
                outputs[-1].append(out)
        return outputs
    return judge


# ---------------------------------------------------------------- the loop, resumable

def judge_items(items, judge, fmt: str, path: Path, samples: int = 1, chunk_size: int = 32, seed: int = 0,
                progress: bool = True) -> int:
    """Judge every item (JudgePrompts of format `fmt`) not yet complete in `path`, chunk by chunk; returns how
    many items were judged. judge(items, n, seed) -> per item, n outputs ({"text", "finish_reason", ...})."""
    if any(it.fmt != fmt for it in items):
        raise ValueError(f"judge_items: every item must be of format {fmt!r}")
    done = {r["key"] for r in read_judgments(path)}
    todo = [it for it in items if any(f"{it.key}|{s}" not in done for s in range(samples))]
    bar = progress_bar(len(items), len(items) - len(todo), "judge", progress, unit="prompt")
    right = []
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start:start + chunk_size]
        outputs = judge(chunk, samples, seed)  # seeds per item: the same whatever the chunking
        records = [{**judgment_record(it, s, out["text"]), **out} for it, per_item in zip(chunk, outputs)
                   for s, out in enumerate(per_item) if f"{it.key}|{s}" not in done]
        append_judgments(path, records)
        right += [r["correct"] for r in records if r["correct"] is not None]
        parsed = sum(r["parsed"] for r in records)
        bar.update(len(chunk))
        bar.set_postfix(acc=f"{sum(right) / max(len(right), 1):.3f}" if right else "-",
                        parsed=f"{parsed}/{len(records)}")
    bar.close()
    return len(todo)


# ---------------------------------------------------------------- entry point


def run_judge(args) -> dict:
    """`generate.py judge`: judge, resume if interrupted, write the reports; returns report.json's content."""
    from j1core.engine.precision import rollout_dtype
    from j1core.engine.rollout import RolloutEngine
    from j1core.model import load_model, pick_device

    check_args(args)
    started = time.time()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = {name: getattr(args, name) for name in RUN_IDENTITY}
    check_run_identity(out_dir, identity)
    pairs = load_eval_pairs(args.benchmark, args.data, args.subset, args.limit, args.seed, args.fields,
                            args.data_split)
    device = str(pick_device(args.device))
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=device, cache_dir=args.model_cache)
    completion = args.max_new_tokens if not args.forced_verdict else args.max_think_tokens + 16  # + forced tail
    pairs = fit_pairs(pairs, tokenizer, args.format, args.prompt_style, context_length(model), completion,
                      truncate=args.truncate, where=args.data or args.benchmark, drop_flag=None,
                      kv_budget=args.max_batch_tokens - args.samples * completion)[0]
    dtype = rollout_dtype(args.rollout_dtype, model, device)[0]
    engine = RolloutEngine(model, tokenizer, max_batch_tokens=args.max_batch_tokens, device=device, dtype=dtype)
    judge = engine_judge(engine, tokenizer, args.format, args.forced_verdict, args.max_new_tokens,
                         args.max_think_tokens, args.temperature, args.top_p)
    items = build_prompts(pairs, args.format, tokenizer, args.prompt_style)
    unlabeled = args.benchmark == "jsonl" and is_unlabeled(args.data)
    if unlabeled:  # no gold: the records carry no `correct`
        items = [replace(it, gold=None) for it in items]
    path = out_dir / "judgments.jsonl"
    judged = judge_items(items, judge, args.format, path, args.samples, args.chunk_size, args.seed, args.progress)
    meta = {**identity, "subset": args.subset, "limit": args.limit, "device": device, "dtype": args.dtype,
            "rollout_dtype_used": str(dtype).removeprefix("torch."),
            "items_judged_this_run": judged, "wall_s": time.time() - started}
    if unlabeled:
        report = write_verdicts(read_judgments(path), pairs, args.format, out_dir, meta)
        print(f"{out_dir}/verdicts.jsonl: {verdicts_line(report)}")
        return report
    report = build_report(read_judgments(path), pairs, args.format, args.seed, args.bootstrap, meta)
    write_report(report, out_dir)
    print(f"{out_dir}/report.md: {headline_line(report)}")
    return report
