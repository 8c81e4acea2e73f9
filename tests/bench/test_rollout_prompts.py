"""Tests for bench/rollout.py's --prompts shape: a user's prompt file read as chat-templated prompt ids.

    python -m pytest tests/bench/test_rollout_prompts.py -q
"""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from rollout import file_prompts  # noqa: E402

from j1core.data.pairs import DataError  # noqa: E402
from j1core.model import SMOLLM2_ALIAS, load_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(SMOLLM2_ALIAS)


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_strings_and_conversations_become_chat_templated_ids(tokenizer, tmp_path):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime."}]
    ids = file_prompts(tokenizer, write(tmp_path / "p.jsonl", [{"prompt": "What is 2 + 2?"}, {"prompt": chat}]))
    assert ids[0] == tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], tokenize=True,
                                                   add_generation_prompt=True, return_dict=False)
    assert ids[1] == tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert tokenizer.decode(ids[0]).rstrip().endswith("assistant")  # ready for the reply


@pytest.mark.parametrize("records, where", [
    ([{"prompt": "ok"}, {"text": "no prompt field"}], r":2: field 'prompt'"),
    ([{"prompt": "ok"}, {"prompt": "  "}], r":2: field 'prompt': empty text"),
    ([{"prompt": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]}],
     r":1: field 'prompt\[1\].role'"),
    ([], r":1: field '\(file\)': no prompts"),
])
def test_bad_records_name_the_line_and_field(tokenizer, tmp_path, records, where):
    with pytest.raises(DataError, match=where):
        file_prompts(tokenizer, write(tmp_path / "bad.jsonl", records))
