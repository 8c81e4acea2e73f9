"""Train an LLM judge with GRPO, the J1 recipe.

    python train.py                                  # bundled SmolLM2-135M-Instruct on built-in pairs
    python train.py --format pointwise --max-steps 20 --output runs/pointwise
    deepspeed --num_gpus 2 train.py --zero-stage 3   # ZeRO-3 sharding (gloo on CPU, NCCL on GPUs)

Exit status: 0 done, 2 a user error (one line `j1: error: ...`; --debug adds the traceback), 3 stopped after
--max-bad-steps non-finite steps, 128 + N stopped by signal N (SIGINT, SIGTERM) after saving, 1 a bug.
"""
import signal
import sys

from j1core.threads import set_wait_policy

set_wait_policy()  # before torch loads OpenMP (j1core/threads.py)

from j1core.config import parse_config  # noqa: E402
from j1core.errors import run_main  # noqa: E402


def train(argv) -> int:
    cfg = parse_config(argv)
    from j1core.trainer import BadStepsError, Trainer  # under the deepspeed launcher it shards with ZeRO-3

    trainer = Trainer(cfg)
    try:
        trainer.train()
    except BadStepsError as err:
        print(f"train.py: stopped: {err}", file=sys.stderr)
        return 3
    if trainer.stop_signal is not None:
        name = signal.Signals(trainer.stop_signal).name
        print(f"j1: stopped by {name} after step {trainer.step}; saved {trainer.output / 'checkpoint'}; resume with "
              f"`python train.py --resume {trainer.output} --output {trainer.output}` and the same settings",
              file=sys.stderr)
        return 128 + trainer.stop_signal
    return 0


def main(argv=None) -> int:
    return run_main(train, argv)


if __name__ == "__main__":
    sys.exit(main())
