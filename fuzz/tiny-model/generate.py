"""Writes the fuzzers' tiny BERT model folder beside this script: config.json, tokenizer.json
(BERT's WordPiece set-up with a 32-token vocabulary) and model.safetensors (random f32
weights, seeded: the same bytes every run). Hidden 32 and FFN 64 keep every matrix a whole
number of 32-value quantization blocks, so `quiver quantize` makes GGUF seeds from it.

    python3 fuzz/tiny-model/generate.py
"""
import json
import random
import struct
from pathlib import Path

HERE = Path(__file__).parent
HIDDEN, FFN, LAYERS, HEADS, POSITIONS, TYPES = 32, 64, 1, 2, 16, 2
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "wine", "red", "white", "glass", "table", "chair", "lamp", "gift",
         "kitchen", "book", "##s", "##ed", "##ing", "of", "and", "for", "to", "in",
         "blue", "green", "oak", "steel", "cup", "mug", "bar"]
VOCAB = SPECIALS + WORDS

config = {
    "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
    "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS, "max_position_embeddings": POSITIONS,
    "type_vocab_size": TYPES, "vocab_size": len(VOCAB), "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}

special = lambda token: {"SpecialToken": {"id": token, "type_id": 0}}
tokenizer = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": i, "special": True, "content": t, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False} for i, t in enumerate(SPECIALS)],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                   "strip_accents": None, "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]")],
        "pair": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]"),
                 {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
        "special_tokens": {t: {"id": t, "ids": [VOCAB.index(t)], "tokens": [t]} for t in ["[CLS]", "[SEP]"]},
    },
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": {t: i for i, t in enumerate(VOCAB)}},
}

rng = random.Random(20261208)
tensors = {}
def tensor(name, *shape, around=0.0, spread=0.2):
    n = 1
    for d in shape:
        n *= d
    tensors[name] = (list(shape), [around + rng.gauss(0.0, spread) for _ in range(n)])
def linear(name, inputs, outputs):
    tensor(f"{name}.weight", outputs, inputs)
    tensor(f"{name}.bias", outputs, spread=0.02)
def norm(name):
    tensor(f"{name}.weight", HIDDEN, around=1.0, spread=0.05)
    tensor(f"{name}.bias", HIDDEN, spread=0.02)

tensor("embeddings.word_embeddings.weight", len(VOCAB), HIDDEN)
tensor("embeddings.position_embeddings.weight", POSITIONS, HIDDEN)
tensor("embeddings.token_type_embeddings.weight", TYPES, HIDDEN)
norm("embeddings.LayerNorm")
for i in range(LAYERS):
    p = f"encoder.layer.{i}"
    for part in ["query", "key", "value"]:
        linear(f"{p}.attention.self.{part}", HIDDEN, HIDDEN)
    linear(f"{p}.attention.output.dense", HIDDEN, HIDDEN)
    norm(f"{p}.attention.output.LayerNorm")
    linear(f"{p}.intermediate.dense", HIDDEN, FFN)
    linear(f"{p}.output.dense", FFN, HIDDEN)
    norm(f"{p}.output.LayerNorm")

# safetensors: u64 header length, the JSON header, then the tensors' bytes back to back.
header, data = {}, bytearray()
for name in sorted(tensors):
    shape, values = tensors[name]
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * len(values)]}
    data += struct.pack(f"<{len(values)}f", *values)
head = json.dumps(header, separators=(",", ":")).encode()
head += b" " * (-len(head) % 8)
(HERE / "model.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bytes(data))
(HERE / "config.json").write_text(json.dumps(config, indent=2) + "\n")
(HERE / "tokenizer.json").write_text(json.dumps(tokenizer, indent=1) + "\n")
