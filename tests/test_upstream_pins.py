"""Pins: each transformers behaviour (often a private name) that the package still relies on, one test each.

Every upstream-coupled line in `src/whisper_at_hf` sits in a marked section that names its pin here. When a
transformers upgrade changes one of these behaviours, the named test fails (instead of a user): then update the
marked section, or drop it if upstream now does the right thing itself.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import REPO_ROOT, TINY_EN, tiny_whisper, tiny_whisper_config
from transformers import GenerationConfig, WhisperForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.modeling_whisper_at import WhisperATEncoder


# ----- modeling_whisper_at.py ---------------------------------------------------------------------------------------
def test_pooled_encoder_pass_equals_whisper_encoder():
    """`WhisperATEncoder._forward_pooled` runs the layers itself: it must compute exactly `WhisperEncoder.forward`."""
    config = tiny_whisper_config()
    torch.manual_seed(0)
    ours = WhisperATEncoder(WhisperForAudioTaggingAndASR.config_class.from_whisper_config(config)).eval()
    theirs = WhisperEncoder(config).eval()
    theirs.load_state_dict(ours.state_dict())
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pooled = ours(features, output_pooled_hidden_states=True, output_hidden_states=True)
        plain = theirs(features, output_hidden_states=True)
    torch.testing.assert_close(pooled.last_hidden_state, plain.last_hidden_state, atol=1e-5, rtol=1e-5)
    assert len(pooled.hidden_states) == len(plain.hidden_states) == config.encoder_layers + 1
    for mine, upstream in zip(pooled.hidden_states, plain.hidden_states):
        torch.testing.assert_close(mine, upstream, atol=1e-5, rtol=1e-5)
    # the pooled states are the layer outputs (before the final LayerNorm), 20 frames to one
    layer_one = plain.hidden_states[1]
    torch.testing.assert_close(
        pooled.pooled_hidden_states[:, 0], layer_one.view(2, 75, 20, -1).mean(2), atol=1e-5, rtol=1e-5
    )
    # attentions: transformers' `capture_outputs` hooks record them from the same pass (eager attention returns them)
    ours.set_attn_implementation("eager")
    theirs.set_attn_implementation("eager")
    with torch.no_grad():
        pooled = ours(features, output_pooled_hidden_states=True, output_attentions=True)
        plain = theirs(features, output_attentions=True)
    assert len(pooled.attentions) == len(plain.attentions) == config.encoder_layers
    for mine, upstream in zip(pooled.attentions, plain.attentions):
        torch.testing.assert_close(mine, upstream, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled.pooled_hidden_states[:, 0], layer_one.view(2, 75, 20, -1).mean(2))


def test_whisper_builds_its_parts_in_this_order_and_skips_custom_code_init():
    """`WhisperATModel.__init__` / `WhisperForAudioTaggingAndASR.__init__` rebuild Whisper's parts in Whisper's order
    (encoder, decoder; model, proj_out). transformers skips `_init_weights` for a parameterless module of a class
    defined outside it, so a custom Whisper encoder gets no sinusoids unless it takes the in-tree path (ours does)."""
    from transformers.models.whisper.modeling_whisper import WhisperModel, sinusoids

    config = tiny_whisper_config()
    assert [name for name, _ in WhisperModel(config).named_children()] == ["encoder", "decoder"]
    plain = WhisperForConditionalGeneration(config)
    ours = WhisperForAudioTaggingAndASR(WhisperForAudioTaggingAndASR.config_class.from_whisper_config(config))
    assert [name for name, _ in plain.named_children()] == ["model", "proj_out"]
    assert [name for name, _ in ours.named_children()] == ["model", "proj_out", "audio_tagging_head"]
    assert [name for name, _ in ours.model.named_children()] == ["encoder", "decoder"]

    class CustomEncoder(WhisperEncoder):  # defined here: "custom code" to transformers
        pass

    positions = CustomEncoder(config).embed_positions.weight
    assert not torch.allclose(positions, sinusoids(*positions.shape))
    positions = ours.model.encoder.embed_positions.weight
    torch.testing.assert_close(positions, sinusoids(*positions.shape))


def test_attention_switch_is_guessed_from_the_module_source(tmp_path, monkeypatch):
    """`set_attn_implementation` asks `_can_set_attn_implementation()`, which refuses a class whose module defines an
    `*Attention*(nn.Module)` class without `ALL_ATTENTION_FUNCTIONS.get_interface(` (the head's attention is one):
    the reason our classes answer it themselves."""
    import sys

    from transformers import PreTrainedModel

    assert "_can_set_attn_implementation()" in inspect.getsource(PreTrainedModel.set_attn_implementation)
    module = tmp_path / "guessed_attention_module.py"
    module.write_text(
        "from torch import nn\n"
        "from transformers import PreTrainedModel\n"
        "class HeadAttention(nn.Module):\n    pass\n"
        "class Subclass(PreTrainedModel):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import guessed_attention_module

    try:
        assert guessed_attention_module.Subclass._can_set_attn_implementation() is False
    finally:
        sys.modules.pop("guessed_attention_module", None)


def multilingual_tiny_whisper() -> WhisperForConditionalGeneration:
    model = tiny_whisper(seed=3)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=100,
        eos_token_id=101,
        pad_token_id=0,
        lang_to_id={"<|en|>": 102, "<|de|>": 103},
        task_to_id={"transcribe": 104, "translate": 105},
        no_timestamps_token_id=106,
        is_multilingual=True,
        return_timestamps=False,
    )
    return model


def test_language_detection_reads_encoder_outputs_from_retrieve_init_tokens():
    """Whisper's generate detects the language in `_retrieve_init_tokens(input_features, ..., kwargs)`: from
    `kwargs["encoder_outputs"]` without an encoder pass when `input_features` is None (our override relies on it)."""
    model = multilingual_tiny_whisper()
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(2))
    signature = inspect.signature(WhisperForConditionalGeneration._retrieve_init_tokens)
    assert list(signature.parameters) == [
        "self", "input_features", "batch_size", "generation_config", "config", "num_segment_frames", "kwargs"
    ]
    calls = []
    model.model.encoder.register_forward_hook(lambda *args: calls.append(1))
    generation_config = model.generation_config
    with torch.no_grad():
        from_features = model._retrieve_init_tokens(features, 2, generation_config, model.config, 3000, {})
        assert len(calls) == 1
        encoded = BaseModelOutput(last_hidden_state=model.model.encoder(features).last_hidden_state)
        calls.clear()
        from_outputs = model._retrieve_init_tokens(
            None, 2, generation_config, model.config, 3000, {"encoder_outputs": encoded}
        )
    assert not calls
    assert torch.equal(from_features, from_outputs) and set(from_features[:, 1].tolist()) <= {102, 103}


def test_generate_hands_model_kwargs_to_the_encoder():
    """Generate's model kwargs reach the encoder (`encoder_pass_cache` rides on them) when its forward takes
    `**kwargs`, and are validated against the encoder's signature."""
    assert "encoder_pass_cache" in inspect.signature(WhisperATEncoder.forward).parameters
    source = inspect.getsource(WhisperForConditionalGeneration._prepare_text_encoder_decoder_kwargs_for_generation)
    assert "encoder_accepts_wildcard" in source and "encoder(**encoder_kwargs)" in source
    assert "encoder.forward" in inspect.getsource(WhisperForConditionalGeneration._validate_model_kwargs)


def test_generation_keeps_decoder_ids_only_for_model_type_whisper():
    """transformers keeps user-given decoder ids as they are only for `model_type == "whisper"` (ours is
    "whisper_at"), else prepends the start token: our override of `_prepare_decoder_input_ids_for_generation`."""
    parent = WhisperForConditionalGeneration._prepare_decoder_input_ids_for_generation
    model = tiny_whisper(seed=0)
    start_id = model.generation_config.decoder_start_token_id
    start = torch.tensor([start_id])
    prompt = torch.tensor([[5, start_id, 7]])
    kept, _ = parent(model, 1, "input_features", {"decoder_input_ids": prompt}, start, torch.device("cpu"))
    assert torch.equal(kept, prompt)  # model_type "whisper": kept
    model.config.model_type = "whisper_at"
    try:
        changed, _ = parent(model, 1, "input_features", {"decoder_input_ids": prompt}, start, torch.device("cpu"))
    finally:
        model.config.model_type = "whisper"
    assert changed.shape[1] == 4 and changed[0, 0] == start_id  # otherwise: start token prepended


def test_remote_code_follows_relative_imports_and_skips_try_blocks(tmp_path):
    """`modeling_whisper_at._saving`: transformers copies a module with its *relative* imports (any depth, inside
    functions too) and checks the packages it imports outside `try` blocks; an absolute import of the package in a
    `try` is neither copied nor required, so the saving code stays out of checkpoints and the package optional."""
    from transformers.dynamic_module_utils import get_imports, get_relative_imports

    module = tmp_path / "module.py"
    module.write_text(
        "from .sibling import a\n"
        "def f():\n"
        "    from .inner import b\n"
        "    try:\n"
        "        from whisper_at_hf import saving\n"
        "    except ImportError:\n"
        "        raise\n"
    )
    assert sorted(get_relative_imports(module)) == ["inner", "sibling"]
    assert "whisper_at_hf" not in get_imports(module)
    source = (REPO_ROOT / "src" / "whisper_at_hf" / "modeling_whisper_at.py").read_text()
    assert "    try:\n        from whisper_at_hf import saving\n" in source
    assert "from .saving" not in source and "from .remote_code" not in source and "from .hub_upload" not in source


# ----- head_only.py -------------------------------------------------------------------------------------------------
def test_auto_class_bookkeeping_kwargs(tmp_path, monkeypatch):
    """`AutoModelForSpeechSeq2Seq.from_pretrained` passes the model class only public loading kwargs plus the
    bookkeeping that `head_only.base_loading_kwargs` drops (private `_*` ones, `trust_remote_code`, ...)."""
    from transformers import AutoModelForSpeechSeq2Seq

    from whisper_at_hf.head_only import AUTO_CLASS_BOOKKEEPING_KWARGS, base_loading_kwargs

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=0))
    model.save_pretrained(tmp_path)
    received = {}
    original = WhisperForAudioTaggingAndASR.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        received.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(WhisperForAudioTaggingAndASR, "from_pretrained", classmethod(recording))
    AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path, dtype=torch.float32)
    bookkeeping = {key for key in received if key.startswith("_") or key in AUTO_CLASS_BOOKKEEPING_KWARGS}
    assert bookkeeping, "the Auto class no longer passes bookkeeping kwargs: simplify base_loading_kwargs"
    assert set(base_loading_kwargs(received)) == set(received) - bookkeeping
    assert set(received) - bookkeeping <= {"dtype", "config", "revision", "subfolder", "output_loading_info"}


# ----- configuration_whisper_at.py ----------------------------------------------------------------------------------
def test_one_sided_text_config_is_a_deep_copy():
    """transformers answers `get_text_config(decoder=True)` on a flat encoder-decoder config with a deep copy of the
    whole config (and `generate` asks for it on every call): why `WhisperATConfig.get_text_config` copies without the
    527 tag classes. Ours must give upstream's copy in every other field."""
    from transformers import PretrainedConfig

    from whisper_at_hf import WhisperATConfig

    config = WhisperATConfig.from_whisper_config(tiny_whisper_config())
    upstream = PretrainedConfig.get_text_config(config, decoder=True)
    assert upstream is not config and upstream.id2label == config.id2label and upstream.id2label is not config.id2label
    ours = config.get_text_config(decoder=True)
    theirs, mine = upstream.to_dict(), ours.to_dict()
    assert {key for key in set(theirs) | set(mine) if theirs.get(key) != mine.get(key)} == {"id2label", "label2id"}
    assert ours.num_labels == 2 and config.num_labels == 527  # the model's own config is untouched
    assert config.get_text_config() is config  # both sides: no copy, upstream's answer


def test_pipeline_reads_a_task_default_as_model_and_revision():
    """The registered default of "whisper-at" is plain data, `{"model": (hub_id, revision)}`: `pipeline()` without a
    model reads it through `get_default_model_and_revision`."""
    from transformers.pipelines.base import get_default_model_and_revision

    import whisper_at_hf  # noqa: F401  (registers the task)
    from transformers.pipelines import PIPELINE_REGISTRY

    task = PIPELINE_REGISTRY.supported_tasks["whisper-at"]
    assert get_default_model_and_revision(task, None) == ("whisper-at-hf/whisper-at-small", None)


def test_pipeline_factory_lets_config_custom_pipelines_shadow_registered_tasks():
    """`pipeline()` looks at `config.custom_pipelines` before the task registry and then demands
    trust_remote_code: why a checkpoint's copy of the pipeline is written under a task name of its own
    (`remote_code.REMOTE_PIPELINE_TASK`), not under the installed package's "whisper-at"."""
    from transformers.pipelines import pipeline

    source = inspect.getsource(pipeline)
    assert source.index("if task in custom_tasks:") < source.index("check_task(task)")
    assert "trust_remote_code=True" in source


# ----- pipeline_whisper_at.py, generate_output.py ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def processor():
    if not TINY_EN.is_dir():
        pytest.skip("needs ../shared/models/whisper-tiny.en")
    from transformers import WhisperProcessor

    return WhisperProcessor.from_pretrained(TINY_EN)


def test_asr_pipeline_takes_the_whisper_path_only_for_model_type_whisper(processor):
    """The ASR pipeline picks its Whisper path from `model_type == "whisper"` in `__init__`: without our fixed
    `type`, a Whisper-AT model would take the generic seq2seq path."""
    from transformers import AutomaticSpeechRecognitionPipeline

    from whisper_at_hf import WhisperATPipeline

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=0))
    kwargs = dict(model=model, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    assert AutomaticSpeechRecognitionPipeline(**kwargs).type != "seq2seq_whisper"
    assert WhisperATPipeline(**kwargs).type == "seq2seq_whisper"


def test_pipeline_prepare_generate_kwargs_adds_the_defaults(processor):
    from whisper_at_hf import WhisperATPipeline

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=0))
    pipe = WhisperATPipeline(model=model, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    prepared = pipe._prepare_generate_kwargs({"max_new_tokens": 3})
    assert prepared["max_new_tokens"] == 3 and prepared.get("num_beams") == 5  # the ASR pipeline's default


def test_asr_pipeline_align_to(processor):
    """`_align_to`: what chunk boundaries are rounded to, in samples, as in the ASR pipeline (1 for Whisper)."""
    from whisper_at_hf import WhisperATPipeline

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=0))
    pipe = WhisperATPipeline(model=model, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    assert pipe._align_to == 1


def test_chunk_pipeline_iterator_building_blocks():
    """`WhisperATPipeline.get_iterator` is `ChunkPipeline.get_iterator` with a collate that pads log-mel along time
    (transformers' `pad_collate_fn` cannot): the same three iterators, built the same way."""
    from transformers.pipelines.base import ChunkPipeline, pad_collate_fn

    source = inspect.getsource(ChunkPipeline.get_iterator)
    for line in (
        "PipelineChunkIterator(inputs, self.preprocess, preprocess_params)",
        "PipelinePackIterator(dataloader, self.forward, forward_params, loader_batch_size=batch_size)",
        "PipelineIterator(model_iterator, self.postprocess, postprocess_params)",
    ):
        assert line in source, line

    class FeatureExtractor:
        padding_value, padding_side = 0.0, "right"

    items = [{"input_features": torch.zeros(1, 80, 10)}, {"input_features": torch.zeros(1, 80, 12)}]
    with pytest.raises(RuntimeError):
        pad_collate_fn(None, FeatureExtractor())(items)


def test_whisper_segments_hold_the_full_sequence():
    """With `return_segments=True`, `segments[item][0]["result"]` holds the full sequence (init tokens included) as
    a tensor or a dict with `sequences`; `sequences` itself starts after the init tokens."""
    model = multilingual_tiny_whisper()
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model.generate(features, return_segments=True, language="de", max_new_tokens=3)
    from whisper_at_hf.generate_output import full_sequence

    full = full_sequence(out["segments"][0])
    assert full[:3].tolist() == [100, 103, 104]  # start, <|de|>, transcribe
    assert 103 not in out["sequences"][0].tolist()


def test_asr_postprocess_prepends_the_language_token():
    """The ASR postprocess puts the language token in front of `tokens` (not of `token_timestamps`) when
    `return_language`: `generate_output.times_for_language_token` keeps the two aligned."""
    from transformers import AutomaticSpeechRecognitionPipeline

    source = inspect.getsource(AutomaticSpeechRecognitionPipeline.postprocess)
    assert 'output["tokens"] = torch.cat([lang_token, output["tokens"]], dim=-1)' in source
    assert "token_timestamps" not in source.split("lang_token = ")[1].split("_decode_asr")[0]


def test_asr_chunking(processor):
    """`chunk_length_s`: our chunks are the ASR pipeline's (`chunk_iter` with the sizes its `preprocess` rounds),
    so the transcript is the same; each decoded chunk keeps its stride."""
    import numpy as np
    from transformers import AutomaticSpeechRecognitionPipeline

    from whisper_at_hf import WhisperATPipeline

    components = dict(tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    asr = AutomaticSpeechRecognitionPipeline(model=tiny_whisper(seed=0), **components)
    ours = WhisperATPipeline(model=WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=0)), **components)
    waveform = np.random.default_rng(0).standard_normal(47 * 16000).astype(np.float32) * 0.1
    for kwargs in ({"chunk_length_s": 30}, {"chunk_length_s": 10, "stride_length_s": [1, 2]}):
        theirs = list(asr.preprocess(waveform, **kwargs))
        mine = [item for item in ours.preprocess(waveform, **kwargs) if item["decode"]]
        assert [item["stride"] for item in mine] == [item["stride"] for item in theirs]
        for item, their_item in zip(mine, theirs):
            assert torch.equal(item["input_features"], their_item["input_features"])


def test_model_loading_kwargs_are_taken_before_the_config():
    """head_only.MODEL_LOADING_KWARGS: `from_pretrained` pops each of them itself (so they are not config kwargs),
    and `dtype` is a config attribute (so handing it to the config loader would lose it for the weights)."""
    from transformers import PretrainedConfig, PreTrainedModel

    from whisper_at_hf.head_only import MODEL_LOADING_KWARGS

    source = inspect.getsource(PreTrainedModel.from_pretrained)
    for name in MODEL_LOADING_KWARGS:
        assert f'kwargs.pop("{name}"' in source, name
    assert hasattr(PretrainedConfig(), "dtype")


# ----- long_form_features.py -----------------------------------------------------------------------------------------
def test_long_form_features_generate_reads_input_features_by_shape_device_and_slices():
    """Whisper's `generate` touches `input_features` only through `.shape`, `.device`, `[rows, :, a:b]` slices
    (`_get_input_segment`, `detect_language`), batch cuts when an item finishes (batch > 1 only) and
    `repeat_interleave` (num_return_sequences > 1 only): what `LongFormFeatures` answers for one item."""
    import re

    from transformers.models.whisper.generation_whisper import WhisperGenerationMixin

    source = inspect.getsource(WhisperGenerationMixin.generate)
    code = source.split('"""')[-1]  # after the docstring
    uses = sorted({line.strip() for line in code.splitlines() if re.search(r"\binput_features\b", line)})
    assert uses == sorted({
        "input_features=input_features, input_stride=input_stride, kwargs=kwargs",
        "input_features,",
        'device = kwargs["encoder_outputs"][0].device if "encoder_outputs" in kwargs else input_features.device',
        "input_features=input_features,",
        "input_features, cur_bsz, batch_idx_map = self._maybe_reduce_batch(",
    }), uses
    segment = inspect.getsource(WhisperGenerationMixin._get_input_segment)
    assert "input_features[i : i + 1, :, seek[prev_i] : seek[prev_i] + seek_num_frames[prev_i]]" in segment
    detect = inspect.getsource(WhisperGenerationMixin.detect_language)
    assert 'input_features[:, :, :num_segment_frames]' in detect and "input_features.shape[0]" in detect
    frames = inspect.getsource(WhisperGenerationMixin._retrieve_total_input_frames)
    assert "input_features.shape[0], input_features.shape[-1]" in frames
    expand = inspect.getsource(WhisperGenerationMixin._expand_variables_for_generation)
    assert "num_return_sequences > 1" in expand and "input_features.repeat_interleave" in expand


def test_long_form_features_the_extractor_floors_at_the_whole_inputs_maximum(shared_dir):
    """The feature extractor (torch path) on a long input: STFT with `center=True` (reflect), last frame dropped,
    floor `log_spec.max() - 8` over the whole input, `(x + 4) / 4` — what `LongFormFeatures` reproduces."""
    from transformers import WhisperFeatureExtractor
    from transformers.utils import is_torch_available

    assert is_torch_available()
    source = inspect.getsource(WhisperFeatureExtractor._torch_extract_fbank_features)
    for piece in ("torch.stft(waveform, self.n_fft, self.hop_length, window=window, return_complex=True)",
                  "stft[..., :-1]", "log_spec.max() - 8.0", "(log_spec + 4.0) / 4.0"):
        assert piece in source, piece


# ----- live.py ---------------------------------------------------------------------------------------------------------
def test_alignment_cross_attentions_equal_eager_attentions():
    """live.alignment_cross_attentions rebuilds the cross-attention weights from Whisper's decoder-layer layout."""
    from whisper_at_hf.live import alignment_cross_attentions

    eager = tiny_whisper(seed=3, attn_implementation="eager")
    sdpa = tiny_whisper(seed=3, attn_implementation="sdpa")
    assert sdpa.config._attn_implementation == "sdpa"
    heads = [[0, 1], [1, 3]]
    sdpa.generation_config.alignment_heads = heads
    torch.manual_seed(0)
    states = torch.randn(2, 1500, 64)
    sequences = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        mine, hidden = alignment_cross_attentions(sdpa, sequences, states)
        reference = eager.get_decoder()(
            input_ids=sequences[:, :-1], encoder_hidden_states=states, output_attentions=True, use_cache=False
        ).cross_attentions
    assert sdpa.config._attn_implementation == "sdpa"  # nothing switched on the (shared) model
    expected = eager.get_decoder()(input_ids=sequences[:, :-1], encoder_hidden_states=states).last_hidden_state
    torch.testing.assert_close(hidden, expected, rtol=1e-4, atol=1e-5)
    for layer, head in heads:
        assert mine[layer].shape == reference[layer].shape
        torch.testing.assert_close(mine[layer][:, head], reference[layer][:, head], rtol=1e-4, atol=1e-6)


@pytest.mark.needs_shared
def test_token_end_times_equal_generate_token_timestamps():
    """live.token_end_times feeds Whisper's `_extract_token_timestamps` one step of all positions' attentions: the
    times equal `generate(return_token_timestamps=True)` (which switches the model to eager attention: a copy here)."""
    import soundfile as sf
    from conftest import SHARED_AUDIO
    from transformers import WhisperProcessor

    from whisper_at_hf.live import alignment_cross_attentions, token_end_times

    model = WhisperForConditionalGeneration.from_pretrained(TINY_EN, dtype=torch.float32).eval()
    processor = WhisperProcessor.from_pretrained(TINY_EN)
    audio, _ = sf.read(SHARED_AUDIO / "speech_en.wav", dtype="float32")
    inputs = processor.feature_extractor(
        audio[: 16000 * 3], sampling_rate=16000, return_tensors="pt", return_attention_mask=True
    )
    prompt = processor.tokenizer.get_prompt_ids("The quick", return_tensors="pt")
    with torch.inference_mode():
        states = model.get_encoder()(inputs.input_features).last_hidden_state
        fast = model.generate(inputs.input_features, prompt_ids=prompt, return_dict_in_generate=True)["sequences"]
        prefix = fast[0].tolist().index(model.generation_config.decoder_start_token_id) + 2  # sot, notimestamps
        attentions, _ = alignment_cross_attentions(model, fast, states)
        mine = token_end_times(model, fast, attentions, int(inputs.attention_mask.sum()), prefix)
        reference = model.generate(
            inputs.input_features, attention_mask=inputs.attention_mask, prompt_ids=prompt,
            return_token_timestamps=True, return_dict_in_generate=True,
        )
    assert torch.equal(reference["sequences"], fast)
    torch.testing.assert_close(mine, reference["token_timestamps"], rtol=0, atol=0.021)  # within one 20 ms frame


def test_pipeline_factory_soft_loads_a_component_whose_load_flag_is_none():
    """WhisperATPipeline sets `_load_tokenizer` / `_load_feature_extractor` to None: `pipeline()` then tries the
    checkpoint's own and passes None when it has none (no raise), and the pipeline's `__init__` takes the base
    Whisper's processor (head_only.load_model_processor). A flag of True raises."""
    from transformers.pipelines import _load_pipeline_component

    from whisper_at_hf.pipeline_whisper_at import WhisperATPipeline

    def missing(_component):
        raise OSError("no tokenizer files")

    assert WhisperATPipeline._load_tokenizer is None and WhisperATPipeline._load_feature_extractor is None
    assert _load_pipeline_component(None, None, missing) is None
    assert _load_pipeline_component(None, None, lambda _component: "loaded") == "loaded"
    with pytest.raises(OSError):
        _load_pipeline_component(True, None, missing)


@pytest.mark.needs_shared
def test_generate_with_token_timestamps_switches_the_shared_model_to_eager_attention_for_good():
    """Why live.py rebuilds token times from one teacher-forced pass (`alignment_cross_attentions` +
    `token_end_times`) instead of asking `generate` for them: `return_token_timestamps=True` sets
    `model.config._attn_implementation = "eager"` on the model itself, and it stays so after the call (every later
    caller of a shared model, on any thread, then runs eager attention). The offline pipeline's
    `return_timestamps="word"` goes through it. When this test fails, upstream no longer mutates the model."""
    import soundfile as sf
    from conftest import SHARED_AUDIO
    from transformers import WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(TINY_EN, dtype=torch.float32, attn_implementation="sdpa")
    processor = WhisperProcessor.from_pretrained(TINY_EN)
    audio, _ = sf.read(SHARED_AUDIO / "speech_en.wav", dtype="float32")
    features = processor.feature_extractor(audio[:16000], sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        model.generate(features, max_new_tokens=3)
        assert model.config._attn_implementation == "sdpa"
        model.generate(features, max_new_tokens=3, return_token_timestamps=True)
    assert model.config._attn_implementation == "eager"


def test_long_form_segments_hold_their_windows_generate_output_and_later_read_two_fields():
    """What `WhisperForAudioTaggingAndASR._retrieve_segment` relies on: Whisper's loop builds each window's segments
    in the staticmethod `_retrieve_segment` (called by keyword), each segment's `result` being the window's whole
    `generate` output (shared by the window's segments), with the attentions and scores `return_token_timestamps`
    turned on; after the loop only `result["sequences"]` and `result["token_timestamps"]` are read (in the module's
    `_pad_to_max_length`). When this fails, upstream keeps or reads segment outputs differently."""
    import re

    from conftest import tiny_timestamp_whisper
    from transformers.models.whisper import generation_whisper
    from transformers.models.whisper.generation_whisper import WhisperGenerationMixin

    assert isinstance(inspect.getattr_static(WhisperGenerationMixin, "_retrieve_segment"), staticmethod)
    assert "segments, segment_offset = self._retrieve_segment(\n                    seek_sequence=seek_sequence," in (
        inspect.getsource(WhisperGenerationMixin.generate)
    )
    source = inspect.getsource(generation_whisper)
    reads = sorted(set(re.findall(r'\["result"\][^\n]*', source)))
    assert reads == ['["result"]', '["result"]["token_timestamps"][d["idxs"][0] : d["idxs"][1]] for d in current_segment_list],']
    pad = inspect.getsource(generation_whisper._pad_to_max_length)
    assert 'result = segments[0]["result"]' in pad and 'result["sequences"]' in pad and 'result["token_timestamps"]' in pad

    model = tiny_timestamp_whisper(encoder_layers=2, encoder_attention_heads=1)
    features = torch.randn(1, 80, 5300, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.generate(features, attention_mask=torch.ones(1, 5300, dtype=torch.int32), return_timestamps=True,
                             return_token_timestamps=True, return_segments=True, max_new_tokens=6)
    segments = out["segments"][0]
    windows = {}
    for segment in segments:
        windows.setdefault(round(float(segment["start"]) // 30), set()).add(id(segment["result"]))
    assert len(windows) == 2 and all(len(ids) == 1 for ids in windows.values())  # one shared output per window
    result = segments[0]["result"]
    assert {"scores", "encoder_attentions", "cross_attentions", "sequences", "token_timestamps"} <= set(result)
    assert result["encoder_attentions"][0].shape[-2:] == (1500, 1500)
