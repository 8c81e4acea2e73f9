"""Generate with a judge model: evaluate it on benchmarks, or build synthetic training pairs.

    python generate.py judge --model smollm2-135m-instruct --benchmark llmbar --limit 20 --out runs/eval
    python generate.py synth math --model smollm2-135m-instruct --problems ../shared/data/GSM8K/test.jsonl \
        --out pairs.jsonl
    python generate.py synth noisy --model smollm2-135m-instruct --prompts prompts.jsonl --out pairs.jsonl

Exit status: 0 done, 2 a user error (one line `j1: error: ...`; --debug adds the traceback), 1 a bug.
"""
import argparse
import sys

from j1core.threads import set_wait_policy

set_wait_policy()  # before torch loads OpenMP (j1core/threads.py)

from j1core.errors import ArgumentParser, run_main  # noqa: E402


def generate(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error too")
    commands = parser.add_subparsers(dest="command", required=True)
    from j1core.data.synth import add_synth_args, run_synth
    from j1core.eval.evaluate import add_judge_args, run_judge

    judge = commands.add_parser("judge", help="judge benchmark pairs in both orders and write a report")
    add_judge_args(judge)
    judge.set_defaults(run=run_judge)
    synth = commands.add_parser("synth", help="build synthetic preference pairs with the J1 recipe")
    add_synth_args(synth)
    synth.set_defaults(run=run_synth)
    args = parser.parse_args(argv)
    args.run(args)
    return 0


def main(argv=None) -> int:
    return run_main(generate, argv)


if __name__ == "__main__":
    sys.exit(main())
