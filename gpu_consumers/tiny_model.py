"""A tiny random-weight Wan text-to-video pipeline, built from configs and saved like a real one.

Tests and the default local pool load it through the same ``DiffusionPipeline.from_pretrained`` path
as Wan 2.1, without downloading anything: the tokenizer is a word-level one trained here on
``tiny_corpus.txt`` with the ``tokenizers`` library, and the text encoder, transformer and VAE are the
real diffusers/transformers classes with small configs (sizes follow diffusers' own Wan tests). The
whole pipeline is about 300 KB and renders a 3-prompt, 5-frame, 32x32 batch in well under a second
on a CPU. Its videos are noise: it exists to exercise the real code path.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

CORPUS = Path(__file__).with_name("tiny_corpus.txt")
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
TEXT_DIM = 32


def build_tokenizer(corpus: Path = CORPUS):  # -> transformers.PreTrainedTokenizerFast
    """A lowercase word-level tokenizer over the corpus, ending every text with ``</s>`` as T5 does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    lines = corpus.read_text(encoding="utf-8").splitlines()
    tokenizer.train_from_iterator(lines, trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=512,
    )


def build_tiny_wan(seed: int = 0):  # -> diffusers.WanPipeline
    """The tiny pipeline in memory, with weights drawn from ``seed``."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=1024,  # as Wan 2.1: any size a production batch may ask for
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer
    )


def make_tiny_wan(target: Path, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Build the tiny pipeline and save it to ``target`` (atomically: concurrent builders are harmless)."""
    target = target.expanduser()
    if (target / "model_index.json").is_file() and not overwrite:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build_tiny_wan(seed).save_pretrained(staging)
        if overwrite and target.exists():
            shutil.rmtree(target)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
            log.info("tiny model already built by another process path=%s", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("tiny model saved path=%s", target)
    return target
