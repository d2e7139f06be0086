"""Tiny random-weight checkpoints for smoke tests and benchmarks of the extraction pipeline.

Each is built from a config (no download) and saved with its preprocessor, so the
``Auto*`` classes load it from the folder exactly like a real checkpoint. The features are
meaningless; the shapes, padding, chunking and pooling paths are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mer_ensemble.errors import ExtractError

__all__ = ["TINY_CHECKPOINTS", "TINY_MAX_TOKENS", "TINY_WORDS", "save_tiny_checkpoint"]

HIDDEN = 32


def _encoder(layers: int) -> dict:
    """The size of every tiny transformer encoder: ``HIDDEN`` wide, two heads, ``layers`` layers."""
    return {"hidden_size": HIDDEN, "num_hidden_layers": layers, "num_attention_heads": 2,
            "intermediate_size": 2 * HIDDEN}


def _speech_config(layers: int, norm: str) -> dict:
    """Shared settings of the tiny HuBERT / wav2vec2 configs (``norm``: the front end's norm)."""
    return {**_encoder(layers), "conv_dim": (HIDDEN,) * 7, "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2, "feat_extract_norm": norm}


def _hubert(folder: Path, layers: int) -> None:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    config = HubertConfig(**_speech_config(layers, "layer"), do_stable_layer_norm=True)
    HubertModel(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True, do_normalize=True).save_pretrained(folder)


#: whole words of the tiny BERT's vocabulary (any other ASCII text splits into characters)
TINY_WORDS = (
    "i you we they it is are was not no yes very so really and or but the a to of in on at this that what why "
    "how good great happy glad love fun joy wonderful nice sad sorry cry lost miss alone angry hate mad stupid "
    "awful scared afraid fear help wow surprise really oh okay fine well maybe know think see go come get"
).split()
TINY_MAX_TOKENS = 64


def _bert(folder: Path, layers: int) -> None:
    """A BERT encoder with a word-piece vocabulary of :data:`TINY_WORDS`, letters, digits and
    punctuation (``##``-continuations included, so every ASCII text tokenizes), at most
    :data:`TINY_MAX_TOKENS` tokens."""
    import string

    from transformers import BertConfig, BertModel, BertTokenizerFast

    pieces = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS, *pieces, *(f"##{p}" for p in pieces)]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=HIDDEN, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * HIDDEN, max_position_embeddings=TINY_MAX_TOKENS)
    BertModel(config).eval().save_pretrained(folder)
    import inspect

    tokens = list(dict.fromkeys(vocab))
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers >= 5
        tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, model_max_length=TINY_MAX_TOKENS)
    else:
        tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), model_max_length=TINY_MAX_TOKENS)
    tokenizer.save_pretrained(folder)


def _wav2vec2(folder: Path, layers: int) -> None:
    """wav2vec2-base style: group-norm front end, no attention mask (batched by equal length)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(**_speech_config(layers, "group"))
    Wav2Vec2Model(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=False, do_normalize=True).save_pretrained(
        folder
    )


def _whisper(folder: Path, layers: int) -> None:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(
        d_model=HIDDEN,
        encoder_layers=layers,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * HIDDEN,
        decoder_ffn_dim=2 * HIDDEN,
        num_mel_bins=80,
        vocab_size=64,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    WhisperModel(config).eval().save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)


def _byte_vocab() -> dict[str, int]:
    """GPT-2's byte-level alphabet (one token per byte), the base of a tiny Whisper tokenizer."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): index for index, code in enumerate(codes)}


WHISPER_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|zh|>", "<|translate|>",
                    "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>")


def _whisper_asr(folder: Path, layers: int) -> None:
    """A speech-to-text Whisper (encoder + decoder) with a byte-level tokenizer and a multilingual
    generation config (en, de, zh), saved with its ``WhisperProcessor``."""
    import json

    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    vocab = _byte_vocab()
    for token in WHISPER_SPECIALS:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    end = "<|endoftext|>"
    tokenizer = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end,
                                 bos_token=end, eos_token=end, pad_token=end)
    tokenizer.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIALS[1:])})
    ids = {token: vocab[token] for token in WHISPER_SPECIALS}
    config = WhisperConfig(
        d_model=HIDDEN, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=2 * HIDDEN, decoder_ffn_dim=2 * HIDDEN, num_mel_bins=80,
        vocab_size=len(vocab), max_target_positions=24, pad_token_id=ids[end], bos_token_id=ids[end],
        eos_token_id=ids[end], decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[end], pad_token_id=ids[end],
        bos_token_id=ids[end], max_length=24, is_multilingual=True, no_timestamps_token_id=ids["<|notimestamps|>"],
        lang_to_id={t: ids[t] for t in ("<|en|>", "<|de|>", "<|zh|>")},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        begin_suppress_tokens=[ids[end]], suppress_tokens=[i for t, i in ids.items() if t != end],  # text only
    )
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(folder)


def _clip_vision_config(layers: int) -> object:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(**_encoder(layers), image_size=32, patch_size=8)


def _image_processor(folder: Path) -> None:
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)


def _clip_vision(folder: Path, layers: int) -> None:
    from transformers import CLIPVisionModel

    CLIPVisionModel(_clip_vision_config(layers)).eval().save_pretrained(folder)
    _image_processor(folder)


def _clip(folder: Path, layers: int) -> None:
    """A dual encoder: extraction uses its projected image embedding (``projection_dim`` 16)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    text = CLIPTextConfig(
        **_encoder(layers),
        vocab_size=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    config = CLIPConfig(
        text_config=text.to_dict(), vision_config=_clip_vision_config(layers).to_dict(), projection_dim=16
    )
    CLIPModel(config).eval().save_pretrained(folder)
    _image_processor(folder)


TINY_CHECKPOINTS: dict[str, Callable[[Path, int], None]] = {
    "bert": _bert,
    "hubert": _hubert,
    "wav2vec2": _wav2vec2,
    "whisper": _whisper,
    "whisper-asr": _whisper_asr,
    "clip-vision": _clip_vision,
    "clip": _clip,
}


def save_tiny_checkpoint(kind: str, folder: str | Path, layers: int = 4, seed: int = 0) -> Path:
    """Build the tiny ``kind`` model (hidden size 32, ``layers`` layers, random weights) into ``folder``."""
    import torch

    if kind not in TINY_CHECKPOINTS:
        raise ExtractError(f"unknown tiny checkpoint {kind!r}; expected one of {', '.join(TINY_CHECKPOINTS)}")
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        TINY_CHECKPOINTS[kind](folder, layers)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return folder
