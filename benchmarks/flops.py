"""FLOPs of Whisper-AT per 30 s window: encoder, decoder, TL-TR head, and AST for comparison.

Counts come from `torch.utils.flop_counter.FlopCounterMode` on meta-device models (no weights, no memory, no
time), and each is checked against an independent analytic count written out below. Both count what the torch
counter counts: matrix products (linear, attention score and mixing products, convolutions) at 2 FLOPs per
multiply-add. Element-wise work (LayerNorm, GELU, softmax, bias adds, the 20x average pooling) is left out of
both; it is well under 1 % of every total here.

    python benchmarks/flops.py                       # all Whisper sizes, 100 decoded tokens, 10 s tag windows
    python benchmarks/flops.py --sizes tiny base --tokens 30 --at-time-res 2
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import ASTConfig, ASTForAudioClassification, WhisperConfig, WhisperForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from whisper_at_hf import WhisperATConfig  # noqa: E402
from whisper_at_hf.modeling_whisper_at import WhisperATHead  # noqa: E402

# (d_model, layers per stack, attention heads) of OpenAI's Whisper checkpoints; ffn = 4 d, 80 mels, 30 s input.
WHISPER_DIMS: dict[str, tuple[int, int, int]] = {
    "tiny": (384, 4, 6),
    "base": (512, 6, 8),
    "small": (768, 12, 12),
    "medium": (1024, 24, 16),
    "large-v2": (1280, 32, 20),
}
MULTILINGUAL_VOCAB = 51865
AUDIOSET_LABELS = 527
LOW_DIM = 512  # TL-TR-512: the released "low compute" heads


def whisper_config(size: str, vocab_size: int = MULTILINGUAL_VOCAB) -> WhisperConfig:
    """The architecture of an OpenAI Whisper checkpoint (no weights needed)."""
    d_model, layers, heads = WHISPER_DIMS[size]
    return WhisperConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
    )


def ast_config() -> ASTConfig:
    """transformers' `ASTConfig` defaults are the AudioSet model (1024 frames x 128 mels = 10.24 s), 527 labels."""
    return ASTConfig(num_labels=AUDIOSET_LABELS)


# ----------------------------------------------------------------------------------------------------------------
# Measured: torch's FLOP counter on meta-device models
# ----------------------------------------------------------------------------------------------------------------
def _count(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def _meta_whisper(config: WhisperConfig) -> WhisperForConditionalGeneration:
    with torch.device("meta"):
        return WhisperForConditionalGeneration(config).eval()


def count_encoder(config: WhisperConfig, batch: int = 1) -> int:
    """One encoder pass over a 30 s window (`(batch, 80, 3000)` log-mel)."""
    model = _meta_whisper(config)
    frames = 2 * config.max_source_positions
    features = torch.zeros(batch, config.num_mel_bins, frames, device="meta")
    return _count(lambda: model.model.encoder(features))


def count_decoder(config: WhisperConfig, num_tokens: int = 100, prompt_tokens: int = 1, batch: int = 1) -> int:
    """Greedy decoding of `num_tokens` positions with a KV cache, LM head included.

    The first step feeds `prompt_tokens` tokens (Whisper's start tokens) at once, every later step one token; the
    cross-attention keys/values of the 1500 encoder frames are projected once, at the first step.
    """
    if not 1 <= prompt_tokens <= num_tokens:
        raise ValueError(f"need 1 <= prompt_tokens ({prompt_tokens}) <= num_tokens ({num_tokens})")
    model = _meta_whisper(config)
    encoder_states = torch.zeros(batch, config.max_source_positions, config.d_model, device="meta")

    def decode() -> None:
        cache = None
        steps = [prompt_tokens] + [1] * (num_tokens - prompt_tokens)
        for step in steps:
            ids = torch.zeros(batch, step, dtype=torch.long, device="meta")
            out = model.model.decoder(
                input_ids=ids, encoder_hidden_states=encoder_states, cache=cache, use_cache=True
            )
            cache = out.cache
            model.proj_out(out.last_hidden_state[:, -1:])  # logits of the newest position only, as generate does

    return _count(decode)


def count_head(config: WhisperConfig, at_low_dim: int | None = None, at_time_res: float = 10.0, batch: int = 1) -> int:
    """The TL-TR head on one 30 s window of pooled states `(batch, layers, 75, d)`."""
    at_config = WhisperATConfig.from_whisper_config(config, at_low_dim=at_low_dim)
    with torch.device("meta"):
        head = WhisperATHead(at_config).eval()
    pooled = torch.zeros(
        batch, at_config.at_num_layers, at_config.at_pooled_frames_per_window, config.d_model, device="meta"
    )
    return _count(lambda: head(pooled, at_time_res))


def count_ast(config: ASTConfig | None = None, batch: int = 1) -> int:
    """`ASTForAudioClassification` on one `max_length`-frame input (10.24 s for the AudioSet config)."""
    config = config or ast_config()
    with torch.device("meta"):
        model = ASTForAudioClassification(config).eval()
    features = torch.zeros(batch, config.max_length, config.num_mel_bins, device="meta")
    return _count(lambda: model(features))


# ----------------------------------------------------------------------------------------------------------------
# Analytic: written from the architecture, independently of the counter
# ----------------------------------------------------------------------------------------------------------------
def _linear(rows: int, fan_in: int, fan_out: int) -> int:
    return 2 * rows * fan_in * fan_out


def _attention_products(queries: int, keys: int, width: int) -> int:
    """Q K^T and softmax(.) V summed over heads: 2 products of queries x keys x width multiply-adds."""
    return 2 * 2 * queries * keys * width


def _transformer_block(seqs: int, length: int, width: int, ffn: int) -> int:
    """Pre-LN self-attention block + MLP over `seqs` sequences of `length` tokens."""
    tokens = seqs * length
    projections = 4 * _linear(tokens, width, width)  # q, k, v, out
    attention = seqs * _attention_products(length, length, width)
    mlp = _linear(tokens, width, ffn) + _linear(tokens, ffn, width)
    return projections + attention + mlp


def analytic_encoder(config: WhisperConfig, batch: int = 1) -> int:
    d, frames = config.d_model, config.max_source_positions
    conv1 = 2 * batch * (2 * frames) * config.num_mel_bins * 3 * d  # kernel 3, stride 1 over 3000 mel frames
    conv2 = 2 * batch * frames * d * 3 * d  # kernel 3, stride 2 -> 1500 frames
    layers = config.encoder_layers * _transformer_block(batch, frames, d, config.encoder_ffn_dim)
    return conv1 + conv2 + layers


def analytic_decoder(config: WhisperConfig, num_tokens: int = 100, prompt_tokens: int = 1, batch: int = 1) -> int:
    d, ffn, frames = config.d_model, config.decoder_ffn_dim, config.max_source_positions
    per_layer = 0
    # per position: self-attn q/k/v/out, cross-attn q/out, MLP
    per_layer += num_tokens * batch * (4 * 2 * d * d + 2 * 2 * d * d + 2 * 2 * d * ffn)
    # cross-attention keys/values of the encoder frames, once
    per_layer += 2 * _linear(batch * frames, d, d)
    # cross-attention products: every position attends to all frames
    per_layer += batch * _attention_products(num_tokens, frames, d)
    # causal self-attention with the cache: the prompt attends to itself (full square, as computed), then the
    # i-th position attends to i cached positions
    self_keys = prompt_tokens * prompt_tokens + sum(range(prompt_tokens + 1, num_tokens + 1))
    per_layer += batch * 2 * 2 * self_keys * d
    lm_head = (num_tokens - prompt_tokens + 1) * _linear(batch, d, config.vocab_size)
    return config.decoder_layers * per_layer + lm_head


def analytic_head(config: WhisperConfig, at_low_dim: int | None = None, at_time_res: float = 10.0, batch: int = 1) -> int:
    layers, d = config.encoder_layers, config.d_model
    pooled_frames = config.max_source_positions // 20  # 75 frames of 0.4 s
    window = round(at_time_res / 0.4)
    windows = -(-pooled_frames // window)
    width = at_low_dim or d
    seqs = batch * windows * layers
    flops = _linear(seqs * window, d, width) if at_low_dim else 0
    flops += _transformer_block(seqs, window, width, 4 * width)  # time block: each layer's frames in a window
    flops += _transformer_block(batch * windows, layers, width, 4 * width)  # layer block: across layers
    flops += _linear(batch * windows, width, AUDIOSET_LABELS)
    return flops


def analytic_event_head(
    config: WhisperConfig, at_low_dim: int | None = None, window_s: float = 2.0, hop_s: float = 0.4, batch: int = 1
) -> int:
    """The head on the sliding event windows of one 30 s pass (`return_events=True`): one window of `window_s`
    per curve point, a point every `hop_s` (75 points for 0.4 s), on top of the `at_time_res` windows."""
    layers, d = config.encoder_layers, config.d_model
    points = -(-(config.max_source_positions // 20) // round(hop_s / 0.4))
    window = round(window_s / 0.4)
    width = at_low_dim or d
    seqs = batch * points * layers
    flops = _linear(seqs * window, d, width) if at_low_dim else 0
    flops += _transformer_block(seqs, window, width, 4 * width)
    flops += _transformer_block(batch * points, layers, width, 4 * width)
    flops += _linear(batch * points, width, AUDIOSET_LABELS)
    return flops


def analytic_ast(config: ASTConfig | None = None, batch: int = 1) -> int:
    config = config or ast_config()
    p = config.patch_size
    f_patches = (config.num_mel_bins - p) // config.frequency_stride + 1
    t_patches = (config.max_length - p) // config.time_stride + 1
    patches = f_patches * t_patches
    tokens = patches + 2  # + CLS + distillation token
    h = config.hidden_size
    flops = 2 * batch * patches * p * p * h  # patch embedding convolution, 1 input channel
    flops += config.num_hidden_layers * _transformer_block(batch, tokens, h, config.intermediate_size)
    flops += _linear(batch, h, config.num_labels)
    return flops


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class WhisperFlops:
    size: str
    encoder: int
    decoder: int
    head: int
    head_low: int
    max_rel_error: float  # worst |measured - analytic| / analytic over the four parts

    def share(self, head: int) -> float:
        """Head FLOPs as a fraction of everything (encoder + decoder + head) per 30 s."""
        return head / (self.encoder + self.decoder + head)


def _rel(measured: int, analytic: int) -> float:
    return abs(measured - analytic) / analytic


def whisper_flops(
    size: str, num_tokens: int = 100, prompt_tokens: int = 1, at_time_res: float = 10.0, vocab_size: int = MULTILINGUAL_VOCAB
) -> WhisperFlops:
    config = whisper_config(size, vocab_size)
    parts = {
        "encoder": (count_encoder(config), analytic_encoder(config)),
        "decoder": (
            count_decoder(config, num_tokens, prompt_tokens),
            analytic_decoder(config, num_tokens, prompt_tokens),
        ),
        "head": (count_head(config, None, at_time_res), analytic_head(config, None, at_time_res)),
        "head_low": (count_head(config, LOW_DIM, at_time_res), analytic_head(config, LOW_DIM, at_time_res)),
    }
    error = max(_rel(measured, analytic) for measured, analytic in parts.values())
    return WhisperFlops(size, *(measured for measured, _ in parts.values()), max_rel_error=error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(WHISPER_DIMS), choices=list(WHISPER_DIMS))
    parser.add_argument("--tokens", type=int, default=100, help="decoded positions per 30 s window")
    parser.add_argument("--prompt-tokens", type=int, default=1, help="start tokens fed in the first decoder step")
    parser.add_argument("--at-time-res", type=float, default=10.0, help="tag window in seconds")
    parser.add_argument("--tolerance", type=float, default=0.01, help="max relative gap counter vs analytic")
    args = parser.parse_args(argv)

    g = 1e9
    print(
        f"GFLOPs per 30 s window (batch 1), decoder = {args.tokens} tokens with KV cache, "
        f"tag windows of {args.at_time_res:g} s. Head share = head / (encoder + decoder + head)."
    )
    header = (
        f"{'size':<9}{'encoder':>10}{'decoder':>10}{'TL-TR':>9}{'TL-TR-512':>11}"
        f"{'share':>8}{'share512':>10}{'head/enc':>10}{'|Δ| vs analytic':>17}"
    )
    print(header)
    failed = False
    rows = []
    for size in args.sizes:
        r = whisper_flops(size, args.tokens, args.prompt_tokens, args.at_time_res)
        rows.append(r)
        failed |= r.max_rel_error > args.tolerance
        print(
            f"{size:<9}{r.encoder / g:>10.1f}{r.decoder / g:>10.1f}{r.head / g:>9.2f}{r.head_low / g:>11.2f}"
            f"{100 * r.share(r.head):>7.2f}%{100 * r.share(r.head_low):>9.2f}%"
            f"{100 * r.head / r.encoder:>9.2f}%{100 * r.max_rel_error:>16.3f}%"
        )

    ast_measured, ast_analytic = count_ast(), analytic_ast()
    failed |= _rel(ast_measured, ast_analytic) > args.tolerance
    print(
        f"\nAST (ASTConfig AudioSet defaults, 1024 frames = 10.24 s): {ast_measured / g:.1f} GFLOPs "
        f"(|Δ| vs analytic {100 * _rel(ast_measured, ast_analytic):.3f}%)"
    )
    print(
        "Tags only, AST FLOPs / Whisper-AT FLOPs for 10 s of audio. 'in 30 s' = Whisper-AT cost amortised over a\n"
        "full 30 s window (one third); 'lone 10 s' = a 10 s clip alone still costs a whole padded 30 s encoder pass."
    )
    print(f"{'size':<9}{'head only':>11}{'head-512':>10}{'enc+head, in 30 s':>19}{'enc+head, lone 10 s':>21}")
    for r in rows:
        print(
            f"{r.size:<9}{3 * ast_measured / r.head:>10.0f}x{3 * ast_measured / r.head_low:>9.0f}x"
            f"{3 * ast_measured / (r.encoder + r.head):>18.2f}x{ast_measured / (r.encoder + r.head):>20.2f}x"
        )
    if failed:
        print(f"\nFAIL: a measured count differs from the analytic one by more than {100 * args.tolerance:g} %")
        return 1
    print(f"\nOK: every measured count is within {100 * args.tolerance:g} % of the analytic count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
