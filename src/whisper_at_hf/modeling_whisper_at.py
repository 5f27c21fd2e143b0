"""Whisper-AT: Whisper ASR plus the TL-TR audio-tagging head on the encoder's pooled per-layer states.

Data flow: log-mel features -> Whisper encoder, whose layers are pooled 20x *as they run* (forward hooks) ->
{Whisper decoder (ASR, untouched), TL-TR head (tags)}. One encoder pass feeds both.

Modules, bottom-up: `WhisperATLayerNorm` -> `WhisperATAttention` -> `WhisperATBlock` -> `WhisperATHead` (TL-TR);
`PooledLayerCapture` (the hooks); `WhisperForAudioTaggingAndASR` (the model).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import WhisperForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.utils import ModelOutput

from .configuration_whisper_at import WhisperATConfig

HEAD_PREFIX = "audio_tagging_head"
# Head-only (PEFT-style) checkpoints: this file + config.json naming the base Whisper, no Whisper weights.
HEAD_WEIGHTS_NAME = "audio_tagging_head.safetensors"
_FULL_WEIGHTS_NAMES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# from_pretrained kwargs that concern where files come from, valid for the head repo and the base Whisper alike
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "token")
# config fields that describe the head (everything else comes from the base Whisper's config)
_HEAD_CONFIG_KEYS = (
    "at_low_dim",
    "at_time_heads",
    "at_layer_heads",
    "at_pool_stride",
    "at_time_res",
    "id2label",
    "label2id",
)
# Whisper dims the head depends on: a head attaches only to a Whisper that agrees on all of them
_HEAD_WHISPER_DIMS = ("d_model", "encoder_layers", "num_mel_bins", "max_source_positions")


# --------------------------------------------------------------------------------------------------------------------
# Head building blocks
# --------------------------------------------------------------------------------------------------------------------
class WhisperATLayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back, so fp16/bf16 heads normalise as precisely as fp32 ones."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(
            hidden_states.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        ).to(hidden_states.dtype)


class WhisperATAttention(nn.Module):
    """Multi-head self-attention, Whisper style: biased query/value/out projections, key projection without bias."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`hidden_states`: `(batch, seq_len, hidden_size)` -> `(batch, seq_len, hidden_size)`."""
        batch, seq_len, _ = hidden_states.shape

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, seq_len, self.num_heads, self.head_dim).transpose(1, 2)

        query = split_heads(self.q_proj(hidden_states))
        key = split_heads(self.k_proj(hidden_states))
        value = split_heads(self.v_proj(hidden_states))
        # SDPA's default 1/sqrt(head_dim) equals Whisper's head_dim**-0.25 applied to both query and key.
        attn = F.scaled_dot_product_attention(query, key, value)
        return self.out_proj(attn.transpose(1, 2).reshape(batch, seq_len, -1))


class WhisperATBlock(nn.Module):
    """Pre-LN residual transformer block: self-attention, then a 4x GELU MLP."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.self_attn_layer_norm = WhisperATLayerNorm(hidden_size)
        self.self_attn = WhisperATAttention(hidden_size, num_heads)
        self.final_layer_norm = WhisperATLayerNorm(hidden_size)
        self.fc1 = nn.Linear(hidden_size, 4 * hidden_size)
        self.fc2 = nn.Linear(4 * hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`hidden_states`: `(batch, seq_len, hidden_size)` -> same shape."""
        hidden_states = hidden_states + self.self_attn(self.self_attn_layer_norm(hidden_states))
        return hidden_states + self.fc2(F.gelu(self.fc1(self.final_layer_norm(hidden_states))))


class WhisperATHead(nn.Module):
    """The TL-TR head: per window, a time transformer over each layer's pooled frames, then a layer transformer.

    Input: pooled per-layer encoder states `(batch, num_layers, pooled_frames, d_model)` (75 frames per 30 s).
    Output: logits `(batch, num_windows, num_labels)`, one row per `at_time_res` window; the last window is
    zero-padded when `pooled_frames` is not a multiple of the window.
    """

    def __init__(self, config: WhisperATConfig):
        super().__init__()
        self.config = config
        width = config.at_hidden_size
        if config.at_low_dim:
            self.input_norm = WhisperATLayerNorm(config.d_model)
            self.input_proj = nn.Linear(config.d_model, width)
        self.time_block = WhisperATBlock(width, config.at_time_heads)
        self.layer_block = WhisperATBlock(width, config.at_layer_heads)
        self.classifier_norm = WhisperATLayerNorm(width)
        self.classifier = nn.Linear(width, config.num_labels)

    def forward(self, pooled_states: torch.Tensor, at_time_res: float | None = None) -> torch.Tensor:
        window = self.config.at_window_frames(at_time_res)
        batch, num_layers, frames, dim = pooled_states.shape
        if num_layers != self.config.at_num_layers or dim != self.config.d_model:
            raise ValueError(
                f"pooled_states has {num_layers} layers x width {dim}; this head expects "
                f"{self.config.at_num_layers} x {self.config.d_model}."
            )
        num_windows = math.ceil(frames / window)
        hidden = F.pad(pooled_states, (0, 0, 0, num_windows * window - frames))
        hidden = hidden.to(self.classifier.weight.dtype)
        # (B, L, W*window, d) -> (B, W, L, window, d) -> one sequence per (batch, window, layer)
        hidden = hidden.view(batch, num_layers, num_windows, window, dim).transpose(1, 2)
        hidden = hidden.reshape(batch * num_windows * num_layers, window, dim)
        if self.config.at_low_dim:
            hidden = self.input_proj(self.input_norm(hidden))
        hidden = self.time_block(hidden).mean(dim=1)
        hidden = hidden.view(batch * num_windows, num_layers, -1)
        hidden = self.layer_block(hidden).mean(dim=1)
        logits = self.classifier(self.classifier_norm(hidden))
        return logits.view(batch, num_windows, -1)


# --------------------------------------------------------------------------------------------------------------------
# Pooled capture of the encoder's per-layer states
# --------------------------------------------------------------------------------------------------------------------
class PooledLayerCapture:
    """Forward hooks that average-pool each encoder layer's output as the layer runs.

    Only the pooled `(batch, frames // stride, d_model)` copy of each layer is kept, so the full-resolution states
    of all layers never coexist. The hooks are inert unless a `capture()` context is open, so plain ASR use and
    `generate` pay nothing for them.
    """

    def __init__(self, layers: nn.ModuleList, stride: int):
        self.stride = stride
        self._pooled: list[torch.Tensor] | None = None
        self._handles = [layer.register_forward_hook(self._hook) for layer in layers]

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._pooled is None:
            return
        hidden = output[0] if isinstance(output, tuple) else output
        batch, frames, dim = hidden.shape
        usable = frames // self.stride * self.stride
        self._pooled.append(hidden[:, :usable].view(batch, usable // self.stride, self.stride, dim).mean(dim=2))

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[torch.Tensor]]:
        """Yields the list that fills with one `(batch, pooled_frames, d_model)` tensor per encoder layer."""
        if self._pooled is not None:
            raise RuntimeError("PooledLayerCapture.capture() is not re-entrant.")
        self._pooled = pooled = []
        try:
            yield pooled
        finally:
            self._pooled = None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class WhisperATEncoderOutput(BaseModelOutput):
    """
    Encoder output plus the pooled per-layer states the head reads.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1500, d_model)`): the encoder output.
        pooled_hidden_states (`torch.FloatTensor` of shape `(batch_size, num_layers, 75, d_model)`):
            each encoder layer's output (before the final LayerNorm), average-pooled over `at_pool_stride` frames.
    """

    pooled_hidden_states: torch.FloatTensor | None = None


@dataclass
class WhisperATSeq2SeqOutput(Seq2SeqLMOutput):
    """
    [`Seq2SeqLMOutput`] plus audio tags.

    Args:
        audio_tag_logits (`torch.FloatTensor` of shape `(batch_size, num_windows, num_labels)`):
            TL-TR logits per `at_time_res` window; `None` when the encoder did not run in this call.
        audio_tag_loss (`torch.FloatTensor` of shape `()`): BCE-with-logits of the head, with `audio_labels`.
        lm_loss (`torch.FloatTensor` of shape `()`): the decoder's cross-entropy, with `labels`.
        loss: `lm_loss + audio_tag_loss` (whichever exist).
    """

    audio_tag_logits: torch.FloatTensor | None = None
    audio_tag_loss: torch.FloatTensor | None = None
    lm_loss: torch.FloatTensor | None = None


@dataclass
class WhisperATGenerateOutput(ModelOutput):
    """
    What `generate(..., return_audio_tags=True)` returns.

    Args:
        sequences (`torch.LongTensor` of shape `(batch_size, sequence_length)`): Whisper's generated tokens.
        audio_tag_logits (`torch.FloatTensor` of shape `(batch_size, num_windows, num_labels)`):
            TL-TR logits on the absolute `at_time_res` grid from the start of the input.
        segments (`list`, *optional*): Whisper's segments, when `return_segments=True`.
        token_timestamps (`torch.FloatTensor`, *optional*): when `return_token_timestamps=True`.
        generate_output (`ModelOutput`, *optional*): Whisper's full output when `return_dict_in_generate=True`.
    """

    sequences: torch.LongTensor | None = None
    audio_tag_logits: torch.FloatTensor | None = None
    segments: list | None = None
    token_timestamps: torch.FloatTensor | None = None
    generate_output: ModelOutput | None = None


# --------------------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------------------
class WhisperForAudioTaggingAndASR(WhisperForConditionalGeneration):
    """Whisper for speech recognition, plus the Whisper-AT TL-TR head that tags sounds from the same encoder pass.

    Whisper is frozen (`requires_grad=False`) by default; only `audio_tagging_head` trains. Use
    `unfreeze_whisper()` to fine-tune everything.
    """

    config_class = WhisperATConfig
    config: WhisperATConfig
    # Callables `(model, save_directory)` run by `save_pretrained` before it writes anything (the package registers
    # one that adds its pipeline's code and `config.custom_pipelines`).
    save_hooks: list = []

    def __init__(self, config: WhisperATConfig):
        super().__init__(config)
        self.audio_tagging_head = WhisperATHead(config)
        self._pooled_capture = PooledLayerCapture(self.model.encoder.layers, config.at_pool_stride)
        self._reused_pass: tuple[torch.Tensor, WhisperATEncoderOutput] | None = None
        self.post_init()
        self.freeze_whisper()

    # ----- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_whisper(
        cls,
        whisper: str | WhisperForConditionalGeneration,
        dtype: torch.dtype | str | None = None,
        **head_kwargs: Any,
    ) -> "WhisperForAudioTaggingAndASR":
        """Wraps existing Whisper weights (a model, a local dir or a Hub id) with a freshly initialised head.

        `head_kwargs` are [`WhisperATConfig`] head settings (`at_low_dim=512`, `num_labels=10`, `id2label=...`).
        """
        if isinstance(whisper, WhisperForConditionalGeneration):
            whisper_model = whisper
        else:
            whisper_model = WhisperForConditionalGeneration.from_pretrained(whisper, dtype=dtype or torch.float32)
        config = WhisperATConfig.from_whisper_config(whisper_model.config, **head_kwargs)
        if config.base_model_name_or_path is None and isinstance(whisper, str):
            config.base_model_name_or_path = whisper
        # Build on the meta device and adopt Whisper's tensors, so a large Whisper is never initialised twice.
        with torch.device("meta"):
            model = cls(config)
        missing, unexpected = model.load_state_dict(whisper_model.state_dict(), strict=False, assign=True)
        missing = [key for key in missing if not key.startswith(f"{HEAD_PREFIX}.")]
        if missing or unexpected:
            raise ValueError(f"Whisper weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}.")
        reference = next(whisper_model.parameters())
        model.audio_tagging_head = WhisperATHead(config).to(device=reference.device, dtype=reference.dtype)
        model.audio_tagging_head.apply(model._init_weights)
        model.generation_config = whisper_model.generation_config
        model.freeze_whisper()
        return model

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Any,
        *model_args: Any,
        base_model: str | os.PathLike | WhisperForConditionalGeneration | None = None,
        **kwargs: Any,
    ):
        """Like [`PreTrainedModel.from_pretrained`], but a checkpoint whose head weights are missing or unexpected
        is an error, not a warning: a Whisper-AT model without its trained head would tag at random.

        Head-only checkpoints (written by `save_pretrained(dir, head_only=True)`) are recognised by their
        `audio_tagging_head.safetensors` and no full weights: the base Whisper named in their config
        (`base_model_name_or_path` at `base_model_revision`) is loaded and the head attached, or `base_model`
        (a path, Hub id or loaded [`WhisperForConditionalGeneration`], e.g. a fine-tuned Whisper of the same dims)
        instead. Loading kwargs (`dtype`, `device_map`, `cache_dir`, `token`, ...) go to the base Whisper;
        `revision`/`subfolder` refer to the head checkpoint.
        """
        head_file = cls._find_head_only_weights(pretrained_model_name_or_path, kwargs)
        if head_file is not None:
            return cls._from_head_only(pretrained_model_name_or_path, head_file, base_model, **kwargs)
        if base_model is not None:
            raise ValueError(
                f"base_model= applies to head-only checkpoints, but {pretrained_model_name_or_path} holds full "
                "weights. Save its head with `save_pretrained(dir, head_only=True)` and load that dir instead."
            )
        output_loading_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        except Exception as error:
            if type(error).__name__ == "SafetensorError":  # safetensors' own message does not say which file
                raise _unreadable_weights(pretrained_model_name_or_path, kwargs.get("subfolder"), error) from error
            if not isinstance(error, RuntimeError) or ("mismatch" not in str(error) and "size" not in str(error)):
                raise
            raise ValueError(
                f"{pretrained_model_name_or_path}: weight shapes do not fit its config (mismatched Whisper-AT head "
                f"or Whisper dims; see the loading report above): {error}"
            ) from error
        head_missing = [key for key in info["missing_keys"] if key.startswith(f"{HEAD_PREFIX}.")]
        head_unexpected = [key for key in info["unexpected_keys"] if HEAD_PREFIX in key or "at_model" in key]
        mismatched = [str(item) for item in info.get("mismatched_keys", []) if HEAD_PREFIX in str(item)]
        if head_missing or head_unexpected or mismatched:
            raise ValueError(
                f"{pretrained_model_name_or_path} does not hold a matching Whisper-AT head "
                f"(missing: {sorted(head_missing)[:6]}, unexpected: {sorted(head_unexpected)[:6]}, "
                f"mismatched: {mismatched[:3]}). To add a new head to a plain Whisper, use "
                f"{cls.__name__}.from_whisper(...)."
            )
        model.freeze_whisper()
        return (model, info) if output_loading_info else model

    # ----- head-only checkpoints -------------------------------------------------------------------------------------
    @staticmethod
    def _find_head_only_weights(name_or_path: Any, kwargs: dict[str, Any]) -> str | None:
        """Path of `audio_tagging_head.safetensors` if `name_or_path` is a head-only checkpoint (local dir or Hub
        repo without full weights), else `None`."""
        subfolder = kwargs.get("subfolder") or ""
        local = os.path.join(os.fspath(name_or_path), subfolder)
        if os.path.isdir(local):
            head_file = os.path.join(local, HEAD_WEIGHTS_NAME)
            has_full = any(os.path.isfile(os.path.join(local, name)) for name in _FULL_WEIGHTS_NAMES)
            return head_file if os.path.isfile(head_file) and not has_full else None
        name = os.fspath(name_or_path)
        if os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1:
            return None  # a local path that does not exist: let transformers report it
        from transformers.utils import cached_file

        def find(filename: str) -> str | None:
            try:
                return cached_file(
                    name,
                    filename,
                    revision=kwargs.get("revision"),
                    subfolder=subfolder,
                    _raise_exceptions_for_missing_entries=False,
                    _raise_exceptions_for_connection_errors=False,
                    **{key: kwargs[key] for key in _HUB_KWARGS if key in kwargs},
                )
            except (OSError, ValueError):
                return None

        head_file = find(HEAD_WEIGHTS_NAME)
        if head_file is None or find("model.safetensors") or find("model.safetensors.index.json"):
            return None
        return head_file

    @classmethod
    def _from_head_only(
        cls,
        head_name_or_path: Any,
        head_file: str,
        base_model: str | os.PathLike | WhisperForConditionalGeneration | None,
        **kwargs: Any,
    ) -> Any:
        output_loading_info = kwargs.pop("output_loading_info", False)
        config = kwargs.pop("config", None)
        revision, subfolder = kwargs.pop("revision", None), kwargs.pop("subfolder", "")
        for key in ("trust_remote_code", "_from_auto", "adapter_kwargs", "code_revision", "_commit_hash"):
            kwargs.pop(key, None)  # Auto-class bookkeeping about the head repo, not the base Whisper
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        if config is None:
            config = WhisperATConfig.from_pretrained(
                head_name_or_path, revision=revision, subfolder=subfolder, **hub_kwargs
            )
        if getattr(config, "model_type", None) != WhisperATConfig.model_type:
            raise ValueError(f"{head_name_or_path} has model_type {config.model_type!r}, not a Whisper-AT head.")

        if isinstance(base_model, WhisperForConditionalGeneration):
            whisper, base_name, base_revision = base_model, base_model.name_or_path or None, None
        else:
            base_name = os.fspath(base_model) if base_model is not None else config.base_model_name_or_path
            base_revision = None if base_model is not None else config.base_model_revision
            if not base_name:
                raise ValueError(
                    f"{head_name_or_path} is a head-only checkpoint whose config names no base Whisper "
                    "(base_model_name_or_path); pass base_model=PATH_OR_ID_OR_MODEL."
                )
            # check the dims on the config before loading (possibly GBs of) weights
            from transformers import WhisperConfig

            try:
                base_config = WhisperConfig.from_pretrained(base_name, revision=base_revision, **hub_kwargs)
            except (OSError, ValueError) as error:  # a missing local path surfaces as a "Repo id must be ..." error
                where = "given as base_model=" if base_model is not None else "recorded in config.json"
                raise OSError(
                    f"{head_name_or_path} is a head-only checkpoint: the base Whisper `{base_name}` {where} was not "
                    f"found; pass `base_model=` (a local path, Hub id or loaded WhisperForConditionalGeneration). "
                    f"({type(error).__name__}: {error})"
                ) from error
            cls.check_whisper_fits_head(config, base_config, base_name)
            whisper = WhisperForConditionalGeneration.from_pretrained(base_name, revision=base_revision, **kwargs)
        cls.check_whisper_fits_head(config, whisper.config, base_name)

        head_kwargs = {key: getattr(config, key) for key in _HEAD_CONFIG_KEYS}
        model = cls.from_whisper(
            whisper, base_model_name_or_path=base_name, base_model_revision=base_revision, **head_kwargs
        )
        try:
            model.load_head(head_file)
        except Exception as error:
            if type(error).__name__ == "SafetensorError":
                raise _unreadable_weights(head_file, None, error) from error
            raise
        # the head repo is the model's name (the pipeline reads label_names.json from it), not the base Whisper
        model.config._name_or_path = model.name_or_path = os.fspath(head_name_or_path)
        model.eval()
        info = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
        return (model, info) if output_loading_info else model

    @staticmethod
    def check_whisper_fits_head(head_config: Any, whisper_config: Any, whisper_name: str | None = None) -> None:
        """Raises `ValueError` naming every dim in which a Whisper config disagrees with what a head was built for
        (`d_model`, `encoder_layers`, `num_mel_bins`, `max_source_positions`)."""
        mismatches = [
            f"{dim}: head {getattr(head_config, dim)} vs Whisper {getattr(whisper_config, dim)}"
            for dim in _HEAD_WHISPER_DIMS
            if getattr(head_config, dim) != getattr(whisper_config, dim)
        ]
        if mismatches:
            raise ValueError(
                f"the audio-tagging head does not fit the Whisper {whisper_name or ''}: " + "; ".join(mismatches) + "."
            )

    def load_head(self, path: str | os.PathLike) -> None:
        """Loads head weights from a `audio_tagging_head.safetensors` file (keys `audio_tagging_head.*`).

        Raises `ValueError` when weights are missing, unexpected or of the wrong shape.
        """
        from safetensors.torch import load_file

        state = load_file(os.fspath(path))
        prefix = f"{HEAD_PREFIX}."
        foreign = sorted(key for key in state if not key.startswith(prefix))
        head_state = {key[len(prefix) :]: tensor for key, tensor in state.items() if key.startswith(prefix)}
        try:
            missing, unexpected = self.audio_tagging_head.load_state_dict(head_state, strict=False)
        except RuntimeError as error:  # shape mismatches
            raise ValueError(f"head weights in {path} do not fit this model's head: {error}") from None
        if missing or unexpected or foreign:
            raise ValueError(
                f"head weights in {path} do not fit this model's head (missing: {sorted(missing)[:6]}, "
                f"unexpected: {sorted(unexpected)[:6]}, not head weights: {foreign[:6]})."
            )

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, head_only: bool = False, **kwargs: Any):
        """[`PreTrainedModel.save_pretrained`] after running `save_hooks` (e.g. writing the pipeline's code); with
        `head_only=True`, writes only the head (see [`save_head`])."""
        if kwargs.get("is_main_process", True):
            for hook in self.save_hooks:
                hook(self, save_directory)
        if not head_only:
            return super().save_pretrained(save_directory, *args, **kwargs)
        return self.save_head(save_directory, **kwargs)

    def save_head(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> None:
        """Writes a head-only checkpoint: `audio_tagging_head.safetensors` (a few MB), `config.json` naming the base
        Whisper (`base_model_name_or_path`, `base_model_revision`) and, for `trust_remote_code`, the code files and
        `auto_map`. `from_pretrained(save_directory)` loads the base Whisper and attaches the head.

        With `push_to_hub=True` the folder is uploaded to `repo_id` (default: the folder name); `token`,
        `private`, `commit_message` are passed on. Other `save_pretrained` kwargs do not apply and are ignored.
        """
        if not self.config.base_model_name_or_path:
            raise ValueError(
                "a head-only checkpoint must name its base Whisper: set model.config.base_model_name_or_path "
                "(and base_model_revision) to the Whisper path or Hub id the head belongs to."
            )
        if not is_main_process:
            return
        from safetensors.torch import save_file

        os.makedirs(save_directory, exist_ok=True)
        if any(os.path.isfile(os.path.join(save_directory, name)) for name in _FULL_WEIGHTS_NAMES):
            warnings.warn(
                f"{save_directory} also holds full model weights; from_pretrained will load those, not the head-only "
                "checkpoint. Save head-only checkpoints to their own folder."
            )
        config = copy.deepcopy(self.config)
        config.architectures = [self.__class__.__name__]
        config.dtype = str(self.audio_tagging_head.classifier.weight.dtype).split(".")[1]
        if self.is_remote_code():
            from transformers.dynamic_module_utils import custom_object_save

            custom_object_save(self, save_directory, config=config)
        config.save_pretrained(save_directory)
        state = {
            f"{HEAD_PREFIX}.{key}": tensor.detach().to("cpu").contiguous()
            for key, tensor in self.audio_tagging_head.state_dict().items()
        }
        save_file(state, os.path.join(save_directory, HEAD_WEIGHTS_NAME), metadata={"format": "pt"})
        if push_to_hub:
            from huggingface_hub import HfApi

            api = HfApi(token=kwargs.get("token"))
            repo_id = kwargs.get("repo_id") or os.path.basename(os.path.abspath(save_directory))
            repo_id = api.create_repo(repo_id, private=kwargs.get("private"), exist_ok=True).repo_id
            api.upload_folder(
                repo_id=repo_id,
                folder_path=save_directory,
                commit_message=kwargs.get("commit_message") or "Upload Whisper-AT head",
            )

    # ----- freezing -------------------------------------------------------------------------------------------------
    def freeze_whisper(self) -> None:
        """Freezes every Whisper parameter; only the audio-tagging head stays trainable."""
        for name, param in self.named_parameters():
            param.requires_grad = name.startswith(f"{HEAD_PREFIX}.")

    def unfreeze_whisper(self) -> None:
        """Makes every parameter trainable (Whisper included)."""
        for param in self.parameters():
            param.requires_grad = True

    def num_parameters_summary(self) -> str:
        """PEFT-style `trainable params: N || all params: M || trainable%: P`."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"

    # ----- encoder + head -------------------------------------------------------------------------------------------
    def encode(self, input_features: torch.Tensor, **encoder_kwargs: Any) -> WhisperATEncoderOutput:
        """One encoder pass that also returns the pooled per-layer states.

        Args:
            input_features: `(batch_size, num_mel_bins, 3000)` log-mel features of 30 s windows.
        Returns:
            [`WhisperATEncoderOutput`] with `last_hidden_state` `(batch_size, 1500, d_model)` and
            `pooled_hidden_states` `(batch_size, num_layers, 75, d_model)`.
        """
        reused = self._reusable_pass(input_features, encoder_kwargs)
        if reused is not None and reused.pooled_hidden_states is not None:
            return reused
        with self._pooled_capture.capture() as pooled:
            encoder_outputs = self.model.encoder(input_features, **encoder_kwargs)
        if len(pooled) != self.config.at_num_layers:
            raise RuntimeError(
                f"captured {len(pooled)} encoder layers, expected {self.config.at_num_layers} "
                "(is encoder_layerdrop active in training mode?)"
            )
        return WhisperATEncoderOutput(
            last_hidden_state=encoder_outputs.last_hidden_state,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
            pooled_hidden_states=torch.stack(pooled, dim=1),
        )

    def tag_pooled(self, pooled_hidden_states: torch.Tensor, at_time_res: float | None = None) -> torch.Tensor:
        """Runs the head. `(batch, num_layers, frames, d_model)` -> logits `(batch, num_windows, num_labels)`."""
        return self.audio_tagging_head(pooled_hidden_states, at_time_res)

    def tag(
        self, input_features: torch.Tensor, at_time_res: float | None = None, num_frames: int | None = None
    ) -> torch.Tensor:
        """Audio tags only: encoder + head, no decoding.

        Args:
            input_features: `(batch_size, num_mel_bins, n_frames)`. Up to 3000 frames (30 s) is one encoder pass;
                longer inputs run one pass per 30 s window and are tagged on the absolute `at_time_res` grid from
                frame 0, keeping only the pooled states of a partial window between passes (flat memory).
            at_time_res: window in seconds (positive multiple of 0.4); defaults to `config.at_time_res`.
            num_frames: frames of real audio (defaults to all of `input_features`); windows past it are dropped.
        Returns:
            logits `(batch_size, num_windows, num_labels)`, `num_windows = ceil(num_frames / window)`.
        """
        window = self.config.at_window_frames(at_time_res)
        segment_frames = self._segment_frames
        total = input_features.shape[-1] if num_frames is None else num_frames
        mel_per_pooled = segment_frames // self.config.at_pooled_frames_per_window
        needed_pooled = math.ceil(total / mel_per_pooled)
        num_windows = math.ceil(needed_pooled / window)

        logits: list[torch.Tensor] = []
        carry: torch.Tensor | None = None
        for start in range(0, max(total, 1), segment_frames):
            segment = input_features[..., start : start + segment_frames]
            segment = F.pad(segment, (0, segment_frames - segment.shape[-1]))
            pooled = self.encode(segment).pooled_hidden_states
            if carry is not None:
                pooled = torch.cat([carry, pooled], dim=2)
            is_last = start + segment_frames >= total
            complete = pooled.shape[2] if is_last else pooled.shape[2] // window * window
            if complete:
                logits.append(self.tag_pooled(pooled[:, :, :complete], at_time_res))
            carry = pooled[:, :, complete:]
        return torch.cat(logits, dim=1)[:, :num_windows]

    @property
    def _segment_frames(self) -> int:
        """Mel frames of one encoder window (3000 = 30 s)."""
        encoder = self.model.encoder
        return self.config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]

    # ----- forward --------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_features: torch.Tensor | None = None,
        audio_labels: torch.Tensor | None = None,
        at_time_res: float | None = None,
        encoder_outputs: Any = None,
        labels: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> WhisperATSeq2SeqOutput:
        r"""
        Whisper's seq2seq forward plus audio tags from the same encoder pass.

        Args:
            input_features (`torch.FloatTensor` of shape `(batch_size, num_mel_bins, 3000)`): log-mel features.
            audio_labels (`torch.FloatTensor` of shape `(batch_size, num_labels)` or
                `(batch_size, n_label_windows, num_labels)`, *optional*): multi-hot (or soft) targets for the first
                `n_label_windows` tag windows; gives `audio_tag_loss` (BCE with logits). Named apart from the
                decoder's `labels` so `Trainer(label_names=["audio_labels"])` works.
            at_time_res (`float`, *optional*): tag window in seconds.
            encoder_outputs: a precomputed encoder output; tags are only computed if it carries
                `pooled_hidden_states` (see [`encode`]).
            labels / decoder_input_ids / decoder_inputs_embeds: as in Whisper. When none is given, the decoder is
                skipped (tagging-only forward, e.g. head training).
        """
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("Pass input_features or encoder_outputs.")
            encoder_outputs = self.encode(input_features)
        pooled = getattr(encoder_outputs, "pooled_hidden_states", None)
        audio_tag_logits = self.tag_pooled(pooled, at_time_res) if pooled is not None else None

        audio_tag_loss = None
        if audio_labels is not None:
            if audio_tag_logits is None:
                raise ValueError("audio_labels need the encoder to run in this call (pass input_features).")
            audio_tag_loss = self.audio_tag_loss(audio_tag_logits, audio_labels)

        run_decoder = labels is not None or decoder_input_ids is not None or decoder_inputs_embeds is not None
        if run_decoder:
            plain_encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
            out = super().forward(
                encoder_outputs=plain_encoder_outputs,
                labels=labels,
                decoder_input_ids=decoder_input_ids,
                decoder_inputs_embeds=decoder_inputs_embeds,
                **kwargs,
            )
            fields = dict(out.items())
            lm_loss = fields.pop("loss", None)
        else:  # tagging only: no decoder outputs, and no 1500-frame state for Trainer to gather
            fields, lm_loss = {}, None
        losses = [loss for loss in (lm_loss, audio_tag_loss) if loss is not None]
        return WhisperATSeq2SeqOutput(
            loss=sum(losses) if losses else None,
            lm_loss=lm_loss,
            audio_tag_loss=audio_tag_loss,
            audio_tag_logits=audio_tag_logits,
            **fields,
        )

    @staticmethod
    def audio_tag_loss(audio_tag_logits: torch.Tensor, audio_labels: torch.Tensor) -> torch.Tensor:
        """BCE with logits of the first `n_label_windows` windows. `audio_labels`: `(B, C)` or `(B, W, C)`."""
        if audio_labels.dim() == 2:
            audio_labels = audio_labels[:, None]
        windows = audio_labels.shape[1]
        if windows > audio_tag_logits.shape[1] or audio_labels.shape[-1] != audio_tag_logits.shape[-1]:
            raise ValueError(
                f"audio_labels of shape {tuple(audio_labels.shape)} do not fit audio_tag_logits of shape "
                f"{tuple(audio_tag_logits.shape)}."
            )
        logits = audio_tag_logits[:, :windows].float()
        return F.binary_cross_entropy_with_logits(logits, audio_labels.to(logits.dtype))

    # ----- generation -----------------------------------------------------------------------------------------------
    def _prepare_decoder_input_ids_for_generation(
        self, batch_size: int, model_input_name: str, model_kwargs: dict, decoder_start_token_id: Any, device=None
    ):
        # transformers keeps user-given decoder ids (Whisper's prompts) as they are only for model_type == "whisper";
        # this model is Whisper too, so it must get the same treatment.
        if model_kwargs is not None and "decoder_input_ids" in model_kwargs:
            return model_kwargs.pop("decoder_input_ids"), model_kwargs
        return super()._prepare_decoder_input_ids_for_generation(
            batch_size, model_input_name, model_kwargs, decoder_start_token_id, device
        )

    def generate(
        self,
        input_features: torch.Tensor | None = None,
        *args: Any,
        return_audio_tags: bool = False,
        at_time_res: float | None = None,
        **kwargs: Any,
    ):
        """Whisper's `generate`; with `return_audio_tags=True` it also returns tags from the same encoder pass.

        Short-form input (`(batch_size, num_mel_bins, 3000)`): the encoder runs once; its output feeds Whisper's
        decoding (language detection included) and its pooled states feed the head. (With timestamps, Whisper itself
        re-encodes from a later seek when a segment stops early; those passes stay as in plain Whisper.)

        Long-form input (more than 3000 frames): Whisper's sequential decoding moves its 30 s window by decoded
        timestamps, which do not fall on the head's 0.4 s pooled grid, so tags come from one extra encoder pass per
        aligned 30 s window (see [`tag`]). The `whisper-at` pipeline's chunked mode avoids that extra pass.

        Returns:
            Without `return_audio_tags`, exactly what Whisper's `generate` returns. With it, a
            [`WhisperATGenerateOutput`] with `sequences` and `audio_tag_logits` `(batch_size, num_windows, num_labels)`.
        """
        if not return_audio_tags:
            return super().generate(input_features, *args, **kwargs)
        if input_features is None:
            encoder_outputs = kwargs.get("encoder_outputs")
            pooled = getattr(encoder_outputs, "pooled_hidden_states", None)
            if pooled is None:
                raise ValueError("return_audio_tags=True needs input_features or encoder_outputs from `encode()`.")
            tags = self.tag_pooled(pooled, at_time_res)
            kwargs["encoder_outputs"] = BaseModelOutput(last_hidden_state=encoder_outputs[0])
            result = super().generate(None, *args, **kwargs)
        elif input_features.shape[-1] > self._segment_frames:
            tags = self.tag(input_features, at_time_res)
            result = super().generate(input_features, *args, **kwargs)
        else:
            encoder_outputs = self.encode(input_features)
            tags = self.tag_pooled(encoder_outputs.pooled_hidden_states, at_time_res)
            with self.reuse_encoder_pass(encoder_outputs, input_features):
                result = super().generate(input_features, *args, **kwargs)
        return self._attach_tags(result, tags)

    @contextlib.contextmanager
    def reuse_encoder_pass(self, encoder_outputs: WhisperATEncoderOutput, input_features: torch.Tensor) -> Iterator[None]:
        """Context manager: encoder calls on exactly `input_features` are answered from `encoder_outputs`.

        Args:
            encoder_outputs: a pass made by [`encode`] on `input_features` `(n, num_mel_bins, 3000)` (without
                `pooled_hidden_states`, it serves Whisper's encoder calls but not [`encode`]).
            input_features: the `n` windows the pass was made on. A call is answered when each of its rows equals
                one of them (in any order: a batch, a subset of it, or windows of long audio), else it runs.

        Whisper's `generate` runs the encoder for language detection and again for decoding, and (with timestamps)
        re-encodes from a later seek when a segment ends early. Answering the calls on the same features from the
        pass that fed the head keeps one pass per window while every other call runs as in plain Whisper, so the
        tokens stay identical.
        """
        encoder = self.model.encoder
        run_encoder = encoder.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            features = args[0] if args else kwargs.get("input_features")
            reused = self._reusable_pass(features, kwargs) if len(args) <= 1 else None
            if reused is not None:
                return BaseModelOutput(last_hidden_state=reused.last_hidden_state)
            return run_encoder(*args, **kwargs)

        self._reused_pass = (input_features, encoder_outputs)
        encoder.forward = forward
        try:
            yield
        finally:
            del encoder.forward
            self._reused_pass = None

    def _reusable_pass(self, features: torch.Tensor | None, kwargs: dict) -> WhisperATEncoderOutput | None:
        """The pass held by `reuse_encoder_pass` if it was made on exactly `features` with default outputs."""
        if self._reused_pass is None or features is None:
            return None
        if kwargs.get("output_hidden_states") or kwargs.get("output_attentions"):
            return None
        held_features, held_outputs = self._reused_pass
        if features.shape == held_features.shape and torch.equal(features, held_features):
            return held_outputs
        if features.dim() != 3 or features.shape[1:] != held_features.shape[1:]:
            return None
        rows = []
        for row in features:
            match = next((index for index, held in enumerate(held_features) if torch.equal(row, held)), None)
            if match is None:
                return None
            rows.append(match)
        index = torch.tensor(rows, device=held_features.device)
        pooled = held_outputs.pooled_hidden_states
        return WhisperATEncoderOutput(
            last_hidden_state=held_outputs.last_hidden_state[index],
            pooled_hidden_states=None if pooled is None else pooled[index],
        )

    @staticmethod
    def _attach_tags(result: Any, tags: torch.Tensor) -> WhisperATGenerateOutput:
        if isinstance(result, torch.Tensor):
            return WhisperATGenerateOutput(sequences=result, audio_tag_logits=tags)
        if isinstance(result, ModelOutput):
            return WhisperATGenerateOutput(sequences=result.sequences, audio_tag_logits=tags, generate_output=result)
        return WhisperATGenerateOutput(
            sequences=result["sequences"],
            audio_tag_logits=tags,
            segments=result.get("segments"),
            token_timestamps=result.get("token_timestamps"),
        )


def _unreadable_weights(name_or_path: Any, subfolder: str | None, error: Exception) -> OSError:
    """An `OSError` naming the safetensors file(s) that cannot be read (truncated or garbled), with safetensors' own
    message; for a Hub id, the repo (its files are in the cache)."""
    from safetensors import safe_open

    path = os.path.join(os.fspath(name_or_path), subfolder or "")
    files = [path] if os.path.isfile(path) else []
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith(".safetensors"):
                try:
                    with safe_open(os.path.join(path, name), framework="pt"):
                        pass
                except Exception:  # noqa: BLE001  (any failure to open names the file)
                    files.append(os.path.join(path, name))
    where = ", ".join(files) if files else f"the weights of {name_or_path}"
    return OSError(
        f"cannot read {where}: the file is truncated or corrupt (safetensors: {error}); download or save it again."
    )


__all__ = [
    "PooledLayerCapture",
    "WhisperATEncoderOutput",
    "WhisperATGenerateOutput",
    "WhisperATHead",
    "WhisperATSeq2SeqOutput",
    "WhisperForAudioTaggingAndASR",
]
