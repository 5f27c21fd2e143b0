"""Audio I/O: formats, down-mix, resampling accuracy and named errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile
import torch
from conftest import SHARED_AUDIO

from whisper_at_hf.audio import Audio, AudioDecodeError, load_audio, resample, to_mono

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

SPEECH = SHARED_AUDIO / "speech_en.wav"


@pytest.fixture(scope="module")
def speech(shared_dir) -> np.ndarray:
    return load_audio(SPEECH).array


def test_wav_path_bytes_dict_array_agree(speech):
    reference, rate = soundfile.read(SPEECH, dtype="float32")
    assert rate == 16000 and speech.dtype == np.float32
    np.testing.assert_array_equal(speech, reference)
    np.testing.assert_array_equal(load_audio(SPEECH.read_bytes()).array, reference)
    np.testing.assert_array_equal(load_audio(str(SPEECH)).array, reference)
    np.testing.assert_array_equal(load_audio({"array": reference, "sampling_rate": 16000}).array, reference)
    np.testing.assert_array_equal(load_audio({"raw": torch.from_numpy(reference), "sampling_rate": 16000}).array, reference)
    np.testing.assert_array_equal(load_audio(reference, input_sampling_rate=16000).array, reference)
    pcm = (reference * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(pcm, input_sampling_rate=16000).array, reference, atol=1e-4)
    audio = load_audio(SPEECH)
    assert isinstance(audio, Audio) and audio.source == str(SPEECH) and abs(audio.duration - 7.6835) < 1e-3


def test_stereo_44k_flac_is_downmixed_and_resampled(speech):
    audio = load_audio(SHARED_AUDIO / "speech_en_stereo_44k.flac")
    assert audio.sampling_rate == 16000 and audio.array.ndim == 1
    assert abs(audio.array.shape[0] - speech.shape[0]) <= 2
    n = min(audio.array.shape[0], speech.shape[0])
    correlation = np.corrcoef(audio.array[:n], speech[:n])[0, 1]
    assert correlation > 0.99, correlation


def test_downmix_layouts():
    left, right = np.linspace(-1, 1, 1000, dtype=np.float32), np.zeros(1000, dtype=np.float32)
    expected = (left + right) / 2
    np.testing.assert_allclose(to_mono(np.stack([left, right], 1), "x"), expected)
    np.testing.assert_allclose(to_mono(np.stack([left, right], 0), "x"), expected)
    dict_stereo = load_audio({"array": np.stack([left, right], 0), "sampling_rate": 16000}).array
    np.testing.assert_allclose(dict_stereo, expected)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (the CI installs it)")
def test_mp3_through_ffmpeg(speech):
    audio = load_audio(SHARED_AUDIO / "speech_en.mp3")
    n = min(audio.array.shape[0], speech.shape[0])
    assert abs(audio.array.shape[0] - speech.shape[0]) < 2000
    assert np.corrcoef(audio.array[:n], speech[:n])[0, 1] > 0.95


@pytest.mark.parametrize("orig, new", [(44100, 16000), (8000, 16000), (48000, 16000), (22050, 16000)])
def test_resample_keeps_in_band_sines_and_length(orig, new):
    seconds = 1.0
    t = np.arange(int(orig * seconds)) / orig
    for frequency in (440.0, 3000.0):
        y = resample(np.sin(2 * np.pi * frequency * t).astype(np.float32), orig, new)
        assert y.shape[0] == int(np.ceil(len(t) * new / orig))
        expected = np.sin(2 * np.pi * frequency * np.arange(y.shape[0]) / new)
        inner = slice(200, -200)
        assert np.abs(y[inner] - expected[inner]).max() < 2e-3


def test_resample_removes_what_the_new_rate_cannot_hold():
    orig = 44100
    t = np.arange(orig) / orig
    above_nyquist = np.sin(2 * np.pi * 12000 * t).astype(np.float32)  # 12 kHz > 8 kHz Nyquist of 16 kHz
    y = resample(above_nyquist, orig, 16000)
    assert np.abs(y[200:-200]).max() < 1e-3


def test_errors_name_the_input_and_problem(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioDecodeError, match="missing.wav: no such file"):
        load_audio(missing)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty.wav: file is empty"):
        load_audio(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all " * 20)
    with pytest.raises(AudioDecodeError, match="notes.wav: "):
        load_audio(text)
    with pytest.raises(AudioDecodeError, match="NaN/Inf"):
        load_audio(np.array([0.0, np.nan, 0.1], dtype=np.float32), input_sampling_rate=16000)
    with pytest.raises(AudioDecodeError, match="empty"):
        load_audio(np.zeros(0, dtype=np.float32), input_sampling_rate=16000)
    with pytest.raises(AudioDecodeError, match="shape"):
        load_audio(np.zeros((2, 3, 100), dtype=np.float32), input_sampling_rate=16000)
    with pytest.raises(AudioDecodeError, match="sampling_rate"):
        load_audio(np.zeros(100, dtype=np.float32))
    with pytest.raises(AudioDecodeError, match="sampling_rate"):
        load_audio({"array": np.zeros(100, dtype=np.float32)})
    with pytest.raises(AudioDecodeError, match="invalid sampling rate"):
        load_audio({"array": np.zeros(100, dtype=np.float32), "sampling_rate": -5})
    with pytest.raises(AudioDecodeError, match="directory"):
        load_audio(tmp_path)
    assert issubclass(AudioDecodeError, ValueError)
