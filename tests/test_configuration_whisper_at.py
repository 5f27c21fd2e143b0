import pytest
from conftest import tiny_whisper_config
from transformers import AutoConfig

from whisper_at_hf import AUDIOSET_NUM_LABELS, WhisperATConfig


def test_defaults_carry_every_head_setting():
    config = WhisperATConfig()
    assert config.model_type == "whisper_at"
    assert config.num_labels == AUDIOSET_NUM_LABELS == 527
    assert (config.at_low_dim, config.at_time_heads, config.at_layer_heads) == (None, 1, 8)
    assert (config.at_pool_stride, config.at_time_res) == (20, 10.0)
    assert config.at_num_layers == config.encoder_layers
    assert config.at_pooled_frames_per_window == 75
    assert config.at_hidden_size == config.d_model


def test_from_whisper_config_keeps_whisper_dims_and_adds_head():
    whisper = tiny_whisper_config(d_model=64, encoder_layers=3)
    config = WhisperATConfig.from_whisper_config(whisper, at_low_dim=512, num_labels=7)
    assert (config.d_model, config.encoder_layers, config.vocab_size) == (64, 3, whisper.vocab_size)
    assert config.at_low_dim == config.at_hidden_size == 512
    assert config.num_labels == 7 and config.id2label[6] == "LABEL_6"


@pytest.mark.parametrize("seconds, frames", [(0.4, 1), (2, 5), (10, 25), (30, 75), (4.4, 11)])
def test_window_frames(seconds, frames):
    assert WhisperATConfig().at_window_frames(seconds) == frames


@pytest.mark.parametrize("bad", [0, -0.4, 0.5, 1.0, 10.1, float("nan"), float("inf"), "10"])
def test_invalid_time_resolution_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="multiple of 0.4"):
        WhisperATConfig().at_window_frames(bad)


def test_invalid_head_settings_are_rejected():
    with pytest.raises(ValueError, match="at_layer_heads"):
        WhisperATConfig(d_model=60, encoder_attention_heads=6, at_layer_heads=8)
    with pytest.raises(ValueError, match="multiple of 0.4"):
        WhisperATConfig(at_time_res=3.0)


def test_save_load_and_autoconfig(tmp_path):
    config = WhisperATConfig(at_low_dim=512, at_time_res=2.0, base_model_name_or_path="openai/whisper-tiny")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, WhisperATConfig)
    assert (loaded.at_low_dim, loaded.at_time_res, loaded.base_model_name_or_path) == (512, 2.0, "openai/whisper-tiny")
    assert loaded.num_labels == 527


def test_config_keeps_custom_pipelines_as_saved():
    """A checkpoint's `custom_pipelines` (the remote-code copy, under its own task name) loads unchanged: the config
    does not depend on where it is imported from."""
    entry = {"impl": "pipeline_whisper_at.WhisperATPipeline", "pt": ["AutoModelForSpeechSeq2Seq"], "type": "multimodal"}
    other = {"impl": "other.Pipeline", "pt": [], "type": "text"}
    custom = {"whisper-at-remote-code": entry, "other": other}
    assert WhisperATConfig(custom_pipelines=custom).custom_pipelines == custom
    assert WhisperATConfig.from_dict(WhisperATConfig(custom_pipelines=custom).to_dict()).custom_pipelines == custom