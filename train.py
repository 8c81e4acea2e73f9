"""Train an LLM judge with GRPO, the J1 recipe.

    python train.py                                  # bundled SmolLM2-135M-Instruct on built-in pairs
    python train.py --format pointwise --max-steps 20 --output runs/pointwise
    deepspeed --num_gpus 2 train.py --zero-stage 3   # ZeRO-3 sharding (gloo on CPU, NCCL on GPUs)
"""
import sys

from j1core.config import parse_config


def main(argv=None) -> int:
    cfg = parse_config(argv)
    from j1core.trainer import BadStepsError, Trainer  # under the deepspeed launcher it shards with ZeRO-3

    try:
        Trainer(cfg).train()
    except BadStepsError as err:
        print(f"train.py: stopped: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
