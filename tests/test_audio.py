"""Audio I/O: formats, down-mix, resampling accuracy and named errors."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT, SHARED_AUDIO

from whisper_at_hf.audio import Audio, AudioDecodeError, AudioTruncatedWarning, load_audio, resample, to_mono

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
    for frequency in (440.0, 3000.0, 6500.0 if min(orig, new) > 14000 else 3500.0):
        y = resample(np.sin(2 * np.pi * frequency * t).astype(np.float32), orig, new)
        assert y.dtype == np.float32 and abs(y.shape[0] - len(t) * new / orig) <= 1
        expected = np.sin(2 * np.pi * frequency * np.arange(y.shape[0]) / new)  # no delay: sample 0 stays at 0 s
        inner = slice(200, -200)
        assert np.abs(y[inner] - expected[inner]).max() < 2e-3


def test_resample_removes_what_the_new_rate_cannot_hold():
    orig = 44100
    t = np.arange(orig) / orig
    for frequency in (8100, 12000):  # above the 8 kHz Nyquist frequency of 16 kHz
        y = resample(np.sin(2 * np.pi * frequency * t).astype(np.float32), orig, 16000)
        assert np.abs(y[200:-200]).max() < 1e-3, frequency


def _previous_sinc_resample(array: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """The package's former hand-written resampler (Kaiser-windowed sinc, polyphase, 24 zero crossings, beta 14.77),
    kept here only as the baseline that the `soxr` resampler replacing it is compared with."""
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    scale = 0.99 * min(1.0, new / orig)
    half_width = math.ceil(24 / scale)
    taps = torch.arange(-half_width, half_width + orig, dtype=torch.float64)
    offsets = taps[None, :] - torch.arange(new, dtype=torch.float64)[:, None] * orig / new
    relative = (offsets / half_width).clamp(-1, 1)
    beta = torch.tensor(14.77, dtype=torch.float64)
    window = torch.special.i0(beta * torch.sqrt(1 - relative**2)) / torch.special.i0(beta)
    window = torch.where(offsets.abs() <= half_width, window, torch.zeros_like(window))
    kernel = (scale * torch.sinc(scale * offsets) * window)[:, None, :].float()
    waveform = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    padded = F.pad(waveform[None, None], (half_width, half_width + orig))
    out = F.conv1d(padded, kernel, stride=orig)[0].transpose(0, 1).reshape(-1)
    return out[: math.ceil(array.shape[0] * new / orig)].numpy()


def _snr_db(signal: np.ndarray, reference: np.ndarray, below_hz: float | None = None, rate: int = 16000) -> float:
    n = min(signal.shape[0], reference.shape[0])
    signal, reference = signal[:n].astype(np.float64), reference[:n].astype(np.float64)
    if below_hz is not None:  # compare only the band below `below_hz` (an FFT brick-wall low-pass on both)
        keep = np.fft.rfftfreq(n, 1 / rate) < below_hz
        signal = np.fft.irfft(np.fft.rfft(signal) * keep, n)
        reference = np.fft.irfft(np.fft.rfft(reference) * keep, n)
    return 10 * np.log10(np.sum(reference**2) / np.sum((signal - reference) ** 2))


@pytest.mark.parametrize(
    "name, orig, new",
    [
        ("speech_en_stereo_44k.flac", None, 16000),  # the shared clip that the pipeline really resamples
        ("speech_en.wav", 16000, 44100),
        ("speech_en_music.wav", 16000, 48000),
        ("music_10s.wav", 16000, 22050),
        ("speech_de.wav", 16000, 8000),
    ],
)
def test_soxr_matches_the_previous_resampler_on_the_shared_clips(shared_dir, name, orig, new):
    """Both are linear-phase with no delay, so they agree sample by sample. They differ only in the transition band
    just below the lower Nyquist frequency, where the former kernel (cut-off 0.99 x Nyquist, 24 lobes) already
    rolled off from ~6.5 kHz and let 8.1 kHz through at -10 dB, while soxr stays flat to ~7.4 kHz and stops aliasing:
    >= 60 dB over the band both call their pass band (up to 0.8 x the lower Nyquist), >= 30 dB over all of it."""
    array, rate = soundfile.read(SHARED_AUDIO / name, dtype="float32")
    array = array.mean(axis=1) if array.ndim == 2 else array
    assert orig is None or rate == orig
    ours, previous = resample(array, rate, new), _previous_sinc_resample(array, rate, new)
    assert abs(ours.shape[0] - previous.shape[0]) <= 1
    pass_band = 0.8 * min(rate, new) / 2
    assert _snr_db(ours, previous, below_hz=pass_band, rate=new) >= 60
    assert _snr_db(ours, previous) >= 30


def test_resampling_memory_is_bounded_for_rates_sharing_no_factor(tmp_path):
    """16001 Hz and 44101 Hz (coprime with 16 kHz) once needed gigabytes for a polyphase kernel; now they resample
    within 512 MB of address space (on top of what the interpreter, numpy and torch map at import)."""
    paths = []
    for rate in (16001, 44101):
        path = tmp_path / f"rate_{rate}.wav"
        noise = np.random.default_rng(rate).standard_normal(rate * 20).astype(np.float32) * 0.1
        soundfile.write(path, noise, rate, subtype="PCM_16")
        paths.append(str(path))
    script = textwrap.dedent(
        f"""
        import resource
        from whisper_at_hf.audio import load_audio

        mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
        limit = mapped + 512 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        for path in {paths!r}:
            audio = load_audio(path)
            assert audio.sampling_rate == 16000 and abs(audio.duration - 20.0) < 1e-3, audio.duration
        print("ok")
        """
    )
    env = {"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert completed.returncode == 0 and completed.stdout.strip() == "ok", completed.stderr[-2000:]


def _wav_bytes(array: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, array, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def test_truncated_wav_warns_with_both_durations(tmp_path):
    data = _wav_bytes(np.zeros(32000, dtype=np.float32), 16000)  # 2 s
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 16000])  # header + 0.5 s of 16-bit samples
    message = r"cut.wav: WAV file is truncated: .* declares 2.00 s .* only 0.50 s"
    with pytest.warns(AudioTruncatedWarning, match=message):
        audio = load_audio(cut)
    assert abs(audio.duration - 0.5) < 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(data)  # an intact file does not warn


def test_unsigned_pcm_is_centred():
    """8-bit WAV / uint8 arrays are offset binary: 128 is silence, 0 and 255 the extremes."""
    pcm = np.array([0, 64, 128, 192, 255], dtype=np.uint8)
    np.testing.assert_allclose(load_audio(pcm, input_sampling_rate=16000).array, [-1, -0.5, 0, 0.5, 127 / 128])
    reference = np.sin(np.linspace(0, 20, 800)).astype(np.float32) * 0.5
    from_file = load_audio(_wav_bytes(reference, 16000, subtype="PCM_U8")).array
    as_uint8 = np.round(reference * 128 + 128).clip(0, 255).astype(np.uint8)
    np.testing.assert_allclose(load_audio(as_uint8, input_sampling_rate=16000).array, from_file, atol=1 / 128)


@pytest.mark.parametrize("rate", [0, -5, 0.5, 16000.5, float("nan"), float("inf"), True, "16000", None])
def test_invalid_sampling_rates_are_named(rate):
    with pytest.raises(AudioDecodeError, match="sampling rate|sampling_rate"):
        load_audio({"array": np.zeros(100, dtype=np.float32), "sampling_rate": rate})


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


# --------------------------------------------------------------------------------------------------------------------
# Paths that are no audio file, files cut short, many channels, absurd levels, nothing left after resampling
# --------------------------------------------------------------------------------------------------------------------
def test_paths_that_are_no_regular_file_say_what_they_are(tmp_path):
    import os
    import socket

    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "gone.wav")
    sock_path = tmp_path / "s.wav"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        for path, message in (
            (fifo, "is a named pipe \\(FIFO\\)"),
            ("/dev/zero", "is a character device"),
            (sock_path, "is a socket"),
            (loop, "symbolic link loop"),
            (dangling, "broken symbolic link .*gone.wav"),
        ):
            with pytest.raises(AudioDecodeError, match=f"{path}: {message}"):
                load_audio(path)
    finally:
        server.close()
    # stat says 0 bytes, yet it holds text: what is read decides, not the size
    with pytest.raises(AudioDecodeError, match="/proc/self/environ: not an audio file|not readable") as raised:
        load_audio("/proc/self/environ")
    assert "empty" not in str(raised.value)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (the CI installs it)")
@pytest.mark.parametrize("extension", ["flac", "mp3"])
def test_truncated_flac_and_mp3_warn_like_wav(tmp_path, extension):
    """libsndfile reads a cut MP3 as far as it goes (its header counts more frames); a cut FLAC fails there and
    ffmpeg decodes the first part silently (its container declares the full length): both warn."""
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(6 * 16000) / 16000)).astype(np.float32)
    whole = tmp_path / "whole.wav"
    soundfile.write(whole, tone, 16000)
    encoded = tmp_path / f"clip.{extension}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(whole), str(encoded)], check=True)
    no_xing = tmp_path / f"no_xing.{extension}"  # its length is estimated from the bitrate
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(whole), "-write_xing", "0", str(no_xing)],
                   check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert abs(load_audio(encoded).duration - 6.0) < 0.1  # the intact files do not warn
        assert abs(load_audio(no_xing).duration - 6.0) < 0.1
    cut = tmp_path / f"cut.{extension}"
    cut.write_bytes(encoded.read_bytes()[: encoded.stat().st_size // 3])
    message = rf"cut.{extension}: file is truncated: its header declares 6.\d\d s of audio but only 1.\d\d s"
    with pytest.warns(AudioTruncatedWarning, match=message):
        audio = load_audio(cut)
    assert 1.0 < audio.duration < 2.5


def test_files_with_many_channels_are_downmixed(tmp_path):
    channels = np.stack([np.full(8000, 0.01 * k, dtype=np.float32) for k in range(10)], axis=1)  # (8000, 10)
    path = tmp_path / "ten.wav"
    soundfile.write(path, channels, 16000, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.array.shape == (8000,)
    np.testing.assert_allclose(audio.array, np.full(8000, 0.045), rtol=1e-5)
    np.testing.assert_allclose(load_audio(path.read_bytes()).array, audio.array)
    # a bare array of that shape stays ambiguous: the message asks for the layout
    with pytest.raises(AudioDecodeError, match="cannot tell channels from samples"):
        load_audio(np.zeros((10, 12), dtype=np.float32), input_sampling_rate=16000)


def test_absurd_peaks_are_refused_with_the_level(tmp_path):
    huge = tmp_path / "huge.wav"
    soundfile.write(huge, np.full(1600, 1e29, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"huge.wav: audio peaks at 1e\+29, which is no audio level"):
        load_audio(huge)
    raw_pcm = (np.sin(np.linspace(0, 50, 1600)) * 20000).astype(np.float32)  # int16 values in a float array
    with pytest.raises(AudioDecodeError, match="16-bit sample values\\? divide by 32768"):
        load_audio(raw_pcm, input_sampling_rate=16000)
    clipped = np.full(1600, 1.5, dtype=np.float32)  # over full scale, but audio: kept as it is
    np.testing.assert_array_equal(load_audio(clipped, input_sampling_rate=16000).array, clipped)
    # integer PCM is scaled to [-1, 1) first, so its extremes are fine
    assert load_audio(np.full(100, -32768, dtype=np.int16), input_sampling_rate=16000).array[0] == -1.0


def test_audio_that_resamples_to_nothing_is_refused():
    with pytest.raises(AudioDecodeError, match="audio is too short: 1 samples at 48000 Hz are 0 samples at 16000 Hz"):
        load_audio(np.zeros(1, dtype=np.float32), input_sampling_rate=48000)
    assert load_audio(np.zeros(3, dtype=np.float32), input_sampling_rate=48000).array.shape == (1,)


# ---- streamed long files ---------------------------------------------------------------------------------------------
def _long_clip(speech: np.ndarray, seconds: float) -> np.ndarray:
    return np.resize(speech, int(seconds * 16000)) * 0.5


def test_long_file_is_streamed_with_the_samples_of_a_whole_decode(speech, tmp_path):
    from whisper_at_hf.audio import StreamedAudio, open_audio

    clip = _long_clip(speech, 65)
    path = tmp_path / "long.wav"
    soundfile.write(path, clip, 16000, subtype="FLOAT")
    streamed = open_audio(str(path))
    assert isinstance(streamed, StreamedAudio) and streamed.num_samples == clip.shape[0]
    whole = load_audio(str(path)).array
    np.testing.assert_array_equal(streamed.array, whole)
    np.testing.assert_array_equal(streamed.read(1000, 501000), whole[1000:501000])
    assert streamed.read(clip.shape[0] - 5, clip.shape[0] + 5).shape == (5,)
    assert isinstance(open_audio({"path": str(path)}), StreamedAudio)
    short = tmp_path / "short.wav"
    soundfile.write(short, clip[: 16000 * 10], 16000)
    assert isinstance(open_audio(str(short)), Audio)  # up to 30 s: decoded whole, as before


def test_long_file_at_another_rate_is_resampled_in_blocks_as_whole(speech, tmp_path):
    from whisper_at_hf.audio import open_audio

    stereo = np.stack([_long_clip(speech, 50), _long_clip(speech, 50)[::-1]], axis=1)
    stereo = resample(stereo.mean(axis=1), 16000, 44100)[:, None] * np.array([[1.0, 0.5]], dtype=np.float32)
    path = tmp_path / "long_44k.wav"
    soundfile.write(path, stereo, 44100, subtype="FLOAT")
    streamed = open_audio(str(path))
    whole = load_audio(str(path)).array
    assert streamed.num_samples == whole.shape[0]
    np.testing.assert_allclose(streamed.array, whole, rtol=0, atol=1e-6 * np.abs(whole).max())


def _encode_with_ffmpeg(waveform: np.ndarray, rate: int, path, tmp_path) -> None:
    """`waveform` encoded by ffmpeg to `path` (its extension picks the format); an M4A gets its index ("moov") in
    front, so that the whole-file decode, which pipes the file's bytes to ffmpeg, can read it too."""
    source = tmp_path / "source.wav"
    soundfile.write(source, waveform, rate, subtype="FLOAT")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-movflags", "+faststart", str(path)],
                   check=True)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (the CI installs it)")
@pytest.mark.parametrize("extension, rate, channels", [("m4a", 44100, 2), ("m4a", 16000, 1), ("mp3", 44100, 2)])
def test_long_file_only_ffmpeg_decodes_is_streamed_as_a_whole_decode(speech, tmp_path, monkeypatch, extension, rate,
                                                                      channels):
    """An M4A (AAC: libsndfile cannot read it) longer than 30 s is decoded by an ffmpeg subprocess into a temporary
    WAV and streamed from there, never decoded whole in Python (`_ffmpeg_decode` is not called); its samples are
    those of the whole decode (same ffmpeg decoding, same down-mix, soxr streaming vs whole). An MP3, which
    libsndfile streams itself, stays on that path."""
    from whisper_at_hf import audio as audio_module
    from whisper_at_hf.audio import StreamedAudio, open_audio

    mono = resample(_long_clip(speech, 40), 16000, rate)
    waveform = mono if channels == 1 else np.stack([mono, 0.5 * mono[::-1]], axis=1)
    path = tmp_path / f"long.{extension}"
    _encode_with_ffmpeg(waveform, rate, path, tmp_path)
    whole = load_audio(str(path)).array

    def no_whole_decode(*args):
        raise AssertionError("decoded whole")

    monkeypatch.setattr(audio_module, "_ffmpeg_decode", no_whole_decode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an intact file does not warn
        streamed = open_audio(str(path))
    assert isinstance(streamed, StreamedAudio) and streamed.source == str(path)
    assert streamed.num_samples == whole.shape[0]
    np.testing.assert_allclose(streamed.array, whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    np.testing.assert_allclose(streamed.read(5000, 405000), whole[5000:405000], rtol=0, atol=1e-6 * np.abs(whole).max())


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (the CI installs it)")
def test_long_ffmpeg_only_file_cut_short_warns_and_short_ones_and_non_audio_go_the_whole_way(speech, tmp_path):
    from whisper_at_hf.audio import StreamedAudio, open_audio

    path = tmp_path / "long.m4a"
    _encode_with_ffmpeg(_long_clip(speech, 60), 16000, path, tmp_path)
    cut = tmp_path / "cut.m4a"  # an M4A whose index (at its end, "moov") survives: the middle of its data cut out
    cut_mp4 = tmp_path / "cut_frag.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(path), "-c", "copy", "-movflags",
                    "frag_keyframe+empty_moov", "-f", "mp4", str(cut_mp4)], check=True)
    cut.write_bytes(cut_mp4.read_bytes()[: cut_mp4.stat().st_size // 2])
    with pytest.warns(AudioTruncatedWarning, match=r"cut.m4a: file is truncated: its header declares 60.\d\d s"):
        streamed = open_audio(str(cut))
    assert isinstance(streamed, StreamedAudio) and 20 < streamed.duration < 40
    short = tmp_path / "short.m4a"
    _encode_with_ffmpeg(_long_clip(speech, 10), 16000, short, tmp_path)
    assert isinstance(open_audio(str(short)), Audio)  # up to 30 s: decoded whole, as before
    text = tmp_path / "notes.m4a"
    text.write_text("not audio " * 100000)
    with pytest.raises(AudioDecodeError, match="not an audio file"):
        open_audio(str(text))


def test_long_file_level_checks_run_over_every_block(speech, tmp_path):
    from whisper_at_hf.audio import open_audio

    clip = _long_clip(speech, 45)
    clip[40 * 16000] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, clip, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="1 NaN/Inf samples"):
        open_audio(str(path))
    clip[40 * 16000] = 1e6
    soundfile.write(path, clip, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="peaks at 1e\\+06"):
        open_audio(str(path))
