#!/usr/bin/env python3
"""Regenerates tests/data/tokenizer/*.json with the real HF `tokenizers` package
(pip install tokenizers). Not used by the build or the tests; run by hand:

    python3 tools/make_tokenizer_goldens.py [/path/to/shared]

Writes:
  stories260K_golden.json  ids of varied lines for examples/stories260K (no specials)
  qwen3_extra_golden.json  extra edge cases for the Qwen3 tokenizer in shared/
  synth_*.json             small tokenizers trained here on tinystories text, each
                           {"tokenizer": <tokenizer.json>, "cases": [{"text","ids","decoded"}]}
                           covering ByteLevel use_regex/add_prefix_space, Metaspace,
                           Lowercase/NFKC/Strip normalizers, added-token flags.
"""
import json
import os
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(ROOT), "shared")
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")

EDGE = [
    "", " ", "  ", "a", "Hello world", "  leading and trailing  ", "multiple   inner    spaces",
    "line\nbreaks\n\nand\r\nCRLF\n", "\ttabs\tand mixed \t whitespace", "中文字符和English混合",
    "Emoji 🤖🚀 and accents: café naïve Ωμέγα", "numbers 1234567890 3.14 -42", "I'm sure you'll see, "
    "they've done it; I'D SAY SO.", "<s>inline special</s> tokens <unk>", "x\u180ey\u2028z\u00a0w",
    "ﬁ ligature and ① circled and Ⅻ roman", "İstanbul ΣΑΣ ǅ", "trailing space ", " leading space",
    "\n", "a\u0301e\u0301 combining", "tab\tend\t", "😀😀😀", "🤖" * 5,
]


def corpus_lines():
    lines = []
    with open(os.path.join(SHARED, "data", "tinystories-sample", "tinystories_sample.txt")) as f:
        lines += [l.rstrip("\n") for l in f if l.strip()][:20]
    with open(os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.test.raw")) as f:
        wiki = [l.rstrip("\n") for l in f if l.strip()]
    lines += wiki[:12]
    with open(os.path.join(SHARED, "data", "calib-zh-en", "calib_zh_en.jsonl")) as f:
        for i, l in enumerate(f):
            if i >= 6:
                break
            rec = json.loads(l)
            text = rec.get("text") or next(v for v in rec.values() if isinstance(v, str))
            lines.append(text[:300])
    return lines


def cases(tok, texts, with_decoded=True):
    out = []
    for t in texts:
        enc = tok.encode(t, add_special_tokens=False)
        case = {"text": t, "ids": enc.ids}
        if with_decoded:
            case["decoded"] = tok.decode(enc.ids, skip_special_tokens=False)
        out.append(case)
    return out


def dump(name, obj):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=0)
        f.write("\n")


def train(tok, special):
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
                                  if isinstance(tok.pre_tokenizer, pre_tokenizers.ByteLevel) else [])
    with open(os.path.join(SHARED, "data", "tinystories-sample", "tinystories_sample.txt")) as f:
        text = f.read().splitlines()
    tok.train_from_iterator(text, trainer)


def synth_byte_level():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    train(tok, ["<|end|>"])
    tok.add_tokens([AddedToken("[mask]", lstrip=True, rstrip=True, single_word=False, normalized=False),
                    AddedToken("dog", single_word=True, normalized=True),
                    AddedToken("Cat", normalized=True)])
    tok.add_special_tokens([AddedToken("<|user|>", special=True)])
    return tok


def synth_metaspace(scheme):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Strip(left=False, right=True)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)
    train(tok, ["<unk>", "<s>", "</s>"])
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    texts = corpus_lines() + EDGE
    stories = Tokenizer.from_file(os.path.join(ROOT, "examples", "stories260K", "tokenizer.json"))
    dump("stories260K_golden.json", cases(stories, texts))
    qwen = Tokenizer.from_file(os.path.join(SHARED, "tokenizers", "qwen3", "tokenizer.json"))
    qwen_texts = texts + ["<think>\nok\n</think>\n\n<|im_start|>assistant<|im_end|><|endoftext|>",
                          "<tool_call>{\"a\": 1}</tool_call>", "<|im_start|<|im_start|>>"]
    dump("qwen3_extra_golden.json", cases(qwen, qwen_texts))
    for name, tok in [("synth_bytelevel.json", synth_byte_level()),
                      ("synth_metaspace_first.json", synth_metaspace("first")),
                      ("synth_metaspace_always.json", synth_metaspace("always")),
                      ("synth_metaspace_never.json", synth_metaspace("never"))]:
        extra = ["I saw a [MASK] dog and a Cat.", "hotdog dog, dog!", "x [mask]  y", "<|user|>Hi<|user|>",
                 "Dog DOG dogs", "<s>Once</s> upon"]
        dump(name, {"tokenizer": json.loads(tok.to_str()), "cases": cases(tok, texts + extra)})


if __name__ == "__main__":
    main()
