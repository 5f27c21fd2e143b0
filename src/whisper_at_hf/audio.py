"""Audio input for Whisper-AT: files, bytes, arrays and `datasets`-style dicts -> mono float32 at the model's rate.

Decoding: WAV/FLAC/OGG (and anything else libsndfile reads) through `soundfile`; MP3 and other containers through
an `ffmpeg` subprocess. Multi-channel audio is down-mixed by averaging channels; other sampling rates are converted
with `soxr` (the resampler librosa uses: high quality, memory linear in the audio's length whatever the rates).
A file cut short of the length its header declares (a WAV's `data` chunk, libsndfile's frame count, ffmpeg's
container duration) is read as far as it goes, with an [`AudioTruncatedWarning`].

Long files: [`open_audio`] gives a [`StreamedAudio`] for a file libsndfile reads and longer than 30 s, read block
by block (levels checked over every block; other rates resampled once, in order, with `soxr`'s streaming resampler
into a temporary file), so hours of audio are never held whole. A long file only ffmpeg decodes (MP3, M4A, Opus, ...)
is decoded by an ffmpeg subprocess into a temporary float WAV first, then read the same way.

Every problem is an [`AudioDecodeError`] (a `ValueError`) that names the input and what is wrong with it, so a caller
processing many files can report the bad one and carry on.

This module is copied beside checkpoints for `trust_remote_code` pipelines, so it imports nothing from the package.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Float audio lies in [-1, 1]; a little over is clipping, but 40 dB over full scale is not audio (raw 16-bit values
# in a float array, a corrupt float WAV): refused, since Whisper's log-mel features are not scale-free (far out of
# their range, and NaN from ~1e17 on, where the power spectrum overflows float32).
MAX_SAMPLE_PEAK = 100.0


class AudioDecodeError(ValueError):
    """An input could not be turned into audio. `source` names the input (a path, or a short description)."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class AudioTruncatedWarning(UserWarning):
    """A file holds less audio than its header declares (e.g. a download or copy cut short); what is there is used."""


@dataclass
class Audio:
    """Decoded mono audio.

    Args:
        array: `(num_samples,)` float32 waveform at `sampling_rate`.
        sampling_rate: samples per second.
        source: a name for the input, used in messages.
    """

    array: np.ndarray
    sampling_rate: int
    source: str

    @property
    def duration(self) -> float:
        return self.array.shape[0] / self.sampling_rate

    @property
    def num_samples(self) -> int:
        return self.array.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples `[start, stop)` (clipped to the audio) as `(n,)` float32."""
        return self.array[max(start, 0) : stop]


def describe_input(inputs: Any) -> str:
    """A short name for an input, for error messages and result labels."""
    if isinstance(inputs, (str, os.PathLike)):
        return os.fspath(inputs)
    if isinstance(inputs, (bytes, bytearray)):
        return f"<{len(inputs)} bytes>"
    if isinstance(inputs, dict):
        if inputs.get("path"):
            return str(inputs["path"])
        return "<audio dict>"
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return f"<array of shape {tuple(inputs.shape)}>"
    if is_torchcodec_decoder(inputs):  # datasets keeps the file name on its decoders
        return str(getattr(inputs, "_hf_encoded", {}).get("path") or "<AudioDecoder>")
    return f"<{type(inputs).__name__}>"


# --------------------------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------------------------
# What a path that is no regular file is, for the message (opening a FIFO or socket would block or fail obscurely,
# and a device such as /dev/zero never ends)
_NOT_REGULAR = (
    (stat.S_ISDIR, "is a directory, not an audio file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not an audio file; save the stream to a file first"),
    (stat.S_ISSOCK, "is a socket, not an audio file"),
    (stat.S_ISCHR, "is a character device, not an audio file"),
    (stat.S_ISBLK, "is a block device, not an audio file"),
)


def read_audio_file(path: str | os.PathLike, source: str | None = None) -> tuple[np.ndarray, int]:
    """Reads a file as `(array (num_samples,) or (num_samples, channels) float32, sampling_rate)`."""
    path = os.fspath(path)
    source = source or path
    mode = _stat_mode(path, source)
    for is_kind, problem in _NOT_REGULAR:
        if is_kind(mode):
            raise AudioDecodeError(source, problem)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise AudioDecodeError(source, f"cannot read it: {error.strerror or error}") from error
    if not data:  # read, not stat'ed: files such as /proc/self/environ report 0 bytes and yet hold some
        raise AudioDecodeError(source, "file is empty (0 bytes)")
    return read_audio_bytes(data, source)


def _stat_mode(path: str, source: str) -> int:
    """`st_mode` of `path`, following links; a missing file, a broken link or a link loop each say which."""
    try:
        return os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise AudioDecodeError(source, "symbolic link loop (its links lead back to themselves)") from error
        if error.errno == errno.ENOENT and os.path.islink(path):
            target = os.readlink(path)
            raise AudioDecodeError(source, f"broken symbolic link (to {target!r}, which does not exist)") from error
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise AudioDecodeError(source, "no such file") from error
        raise AudioDecodeError(source, f"cannot read it: {error.strerror or error}") from error


def read_audio_bytes(data: bytes, source: str = "<bytes>") -> tuple[np.ndarray, int]:
    """Decodes the bytes of an audio file: libsndfile first, ffmpeg for what it cannot read (e.g. MP3)."""
    if len(data) == 0:
        raise AudioDecodeError(source, "no audio data (0 bytes)")
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            declared, sampling_rate = sound.frames, sound.samplerate
            array = sound.read(dtype="float32", always_2d=True)
    except MemoryError as error:  # e.g. a header declaring billions of channels
        raise AudioDecodeError(source, f"not enough memory to decode it ({error})") from error
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as sndfile_error:
        # libsndfile names the in-memory buffer ("Error opening <_io.BytesIO object at 0x...>: "); the source is
        # named by the caller
        sndfile_problem = str(sndfile_error).split(">: ", 1)[-1]
    else:
        if _cut_short(declared / sampling_rate, array.shape[0] / sampling_rate):  # e.g. an MP3's Xing frame count
            _warn_truncated(source, "file", declared / sampling_rate, array.shape[0] / sampling_rate)
        else:  # libsndfile counts a WAV's frames from the file's size: look at what its header declares
            _warn_if_wav_truncated(data, array.shape[0], int(sampling_rate), source)
        return (array[:, 0] if array.shape[1] == 1 else array), int(sampling_rate)
    return _ffmpeg_decode(data, source, sndfile_problem)


def _cut_short(declared_seconds: float, read_seconds: float) -> bool:
    """Less audio than declared, beyond what codec priming/padding and bitrate estimates (an MP3 without a Xing
    header, whose length libsndfile guesses) account for."""
    return declared_seconds - read_seconds > max(0.25, 0.02 * declared_seconds)


def _warn_truncated(source: str, kind: str, declared_seconds: float, read_seconds: float) -> None:
    warnings.warn(
        f"{source}: {kind} is truncated: its header declares {declared_seconds:.2f} s of audio but only "
        f"{read_seconds:.2f} s could be read (file cut short?); using what is there.",
        AudioTruncatedWarning,
        stacklevel=5,
    )


def _warn_if_wav_truncated(
    data: bytes, frames_read: int, sampling_rate: int, source: str, file_size: int | None = None
) -> None:
    """Warns when a RIFF/WAVE file's `data` chunk declares more bytes than the file holds (libsndfile then silently
    reads what is there). Streaming writers that leave the size at 0 or 0xFFFFFFFF are not flagged. `data` may be
    the file's head only when `file_size` gives its size."""
    file_size = len(data) if file_size is None else file_size
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    offset, block_align = 12, None
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        body = offset + 8
        if chunk_id == b"fmt " and size >= 14 and body + 14 <= len(data):
            block_align = struct.unpack("<H", data[body + 12 : body + 14])[0]
        elif chunk_id == b"data":
            available = file_size - body
            if block_align and 0 < size < 0xFFFFFFFF and size > available:
                _warn_truncated(source, "WAV file", size / block_align / sampling_rate, frames_read / sampling_rate)
            return
        offset = body + size + (size & 1)  # chunks are padded to an even size


def _ffmpeg_decode(data: bytes, source: str, sndfile_problem: str) -> tuple[np.ndarray, int]:
    """Decodes with ffmpeg to float32 at the file's own rate, keeping channels (down-mixed later, like files)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioDecodeError(
            source,
            f"not readable by libsndfile ({sndfile_problem}) and ffmpeg is not installed; install ffmpeg to read "
            "MP3 and other compressed formats",
        )
    probe = _ffmpeg_stream_info(ffmpeg, data)
    if probe is None:
        raise AudioDecodeError(source, "not an audio file (neither libsndfile nor ffmpeg can decode it)")
    sampling_rate, channels, declared_seconds = probe
    command = [ffmpeg, "-nostdin", "-v", "error", "-i", "pipe:0", "-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    result = subprocess.run(command, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise AudioDecodeError(source, f"ffmpeg cannot decode it: {message[-1] if message else 'unknown error'}")
    array = np.frombuffer(result.stdout, dtype=np.float32)
    if channels > 1:
        array = array[: array.shape[0] // channels * channels].reshape(-1, channels)
    read_seconds = array.shape[0] / sampling_rate  # frames: rows of (samples, channels)
    # a container's declared length (e.g. FLAC's STREAMINFO) against what decoded: ffmpeg stops silently at a cut
    if declared_seconds is not None and _cut_short(declared_seconds, read_seconds):
        _warn_truncated(source, "file", declared_seconds, read_seconds)
    return array.copy(), sampling_rate


def _ffmpeg_stream_info(ffmpeg: str, data: bytes | None, path: str | None = None) -> tuple[int, int, float | None] | None:
    """`(sampling_rate, channels, declared seconds or None)` of the first audio stream of `data` (or of the file
    `path`), read from ffmpeg's banner; `None` if there is none."""
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-hide_banner", "-i", "pipe:0" if path is None else path],
        input=data, capture_output=True, check=False,
    )
    declared = None
    for line in result.stderr.decode(errors="replace").splitlines():
        if line.strip().startswith("Duration:"):  # "Duration: 00:00:06.00, start: ..." or "Duration: N/A, ..."
            declared = _banner_seconds(line.strip()[len("Duration:") :].split(",")[0].strip())
        if "Audio:" not in line:
            continue
        fields = [field.strip() for field in line.split("Audio:", 1)[1].split(",")]
        rate = next((int(field.split()[0]) for field in fields if field.endswith(" Hz")), None)
        layout = fields[2] if len(fields) > 2 else "mono"
        channels = 1 if layout.startswith("mono") else 2 if layout.startswith("stereo") else None
        if channels is None:
            digits = "".join(ch for ch in layout.split()[0] if ch.isdigit())
            channels = int(digits) if digits else 1
            if "." in layout.split()[0]:  # "5.1" -> 6 channels
                channels = sum(int(part) for part in layout.split()[0].split("(")[0].split(".") if part.isdigit())
        if rate:
            return rate, channels, declared
    return None


def _banner_seconds(text: str) -> float | None:
    """`"01:02:03.50"` -> 3723.5; `None` for `"N/A"` or anything else."""
    parts = text.split(":")
    try:
        hours, minutes, seconds = (float(part) for part in parts) if len(parts) == 3 else (None,) * 3
    except ValueError:
        return None
    return None if hours is None else hours * 3600 + minutes * 60 + seconds


# --------------------------------------------------------------------------------------------------------------------
# Checks, down-mix, resampling
# --------------------------------------------------------------------------------------------------------------------
def to_mono(array: np.ndarray, source: str, channels_first: bool | None = None) -> np.ndarray:
    """`(num_samples,)`, `(num_samples, channels)` or `(channels, num_samples)` -> `(num_samples,)` by averaging.

    For 2-D arrays of unknown layout the smaller axis (at most 8 entries) is taken as channels; give
    `channels_first` when that could be ambiguous.
    """
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise AudioDecodeError(source, f"audio must be 1-D (samples) or 2-D (samples x channels), got shape {array.shape}")
    if channels_first is None:
        if min(array.shape) > 8:
            raise AudioDecodeError(
                source, f"cannot tell channels from samples in shape {array.shape} (more than 8 channels?)"
            )
        channels_first = array.shape[0] < array.shape[1]
    return array.mean(axis=0 if channels_first else 1)


def resample(array: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling of a 1-D waveform with `soxr` ("HQ" quality, linear-phase, no delay).

    `(num_samples,)` at `orig_rate` -> `(round(num_samples * new_rate / orig_rate),)` float32 at `new_rate`.
    Memory is linear in the input's length for any pair of rates (also rates that share no factor, e.g. 16001 Hz).
    """
    if orig_rate == new_rate:
        return array
    import soxr

    waveform = np.ascontiguousarray(array, dtype=np.float32)
    return soxr.resample(waveform, int(orig_rate), int(new_rate), quality="HQ")


def check_waveform(array: np.ndarray, source: str) -> np.ndarray:
    """Rejects empty, non-finite, non-numeric audio and float audio peaking above `MAX_SAMPLE_PEAK`; returns float32."""
    if array.dtype.kind not in "fiu":
        raise AudioDecodeError(source, f"audio array has non-numeric dtype {array.dtype}")
    if array.dtype.kind == "i":  # signed PCM -> [-1, 1)
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    elif array.dtype.kind == "u":  # unsigned PCM (e.g. 8-bit WAV) is offset binary: the midpoint is silence
        half = float(np.iinfo(array.dtype).max + 1) / 2
        array = ((array.astype(np.float64) - half) / half).astype(np.float32)
    array = array.astype(np.float32, copy=False)
    if array.size == 0:
        raise AudioDecodeError(source, "audio is empty (0 samples)")
    finite = np.isfinite(array)
    _check_levels(int(array.size - np.count_nonzero(finite)), float(np.abs(array).max()), source)
    return array


def _check_levels(non_finite: int, peak: float, source: str) -> None:
    """The level checks of [`check_waveform`], from counts a block-wise reader can add up."""
    if non_finite:
        raise AudioDecodeError(source, f"audio contains {non_finite} NaN/Inf samples")
    if peak > MAX_SAMPLE_PEAK:
        hint = " (16-bit sample values? divide by 32768)" if peak <= 32768 else ""
        raise AudioDecodeError(
            source,
            f"audio peaks at {peak:.3g}, which is no audio level: float samples lie in [-1, 1] (at most "
            f"{MAX_SAMPLE_PEAK:g} is accepted){hint}",
        )


# --------------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------------
def load_audio(inputs: Any, sampling_rate: int = 16000, input_sampling_rate: int | None = None) -> Audio:
    """Turns any supported input into mono float32 audio at `sampling_rate`.

    Args:
        inputs: a path (`str`/`PathLike`), the bytes of an audio file, a numpy array / torch tensor
            (`(samples,)`, `(samples, channels)` or `(channels, samples)`) with `input_sampling_rate`, or a dict
            `{"array" or "raw": ..., "sampling_rate": int}` (as in `datasets`; a `"path"` key only names it, or is
            read when no array is given), or an [`Audio`].
        sampling_rate: the rate to return.
        input_sampling_rate: the rate of a bare array (required for arrays; ignored for files).
    Raises:
        AudioDecodeError: naming the input and the problem.
    """
    source = describe_input(inputs)
    channels_first = None
    if isinstance(inputs, Audio):
        array, rate, source = inputs.array, inputs.sampling_rate, inputs.source
    elif isinstance(inputs, (str, os.PathLike)):
        if str(inputs).startswith(("http://", "https://")):
            raise AudioDecodeError(source, "URLs are not fetched; download the file and pass its path")
        array, rate = read_audio_file(inputs, source)
        channels_first = False  # decoders give (samples, channels), whatever the number of channels
    elif isinstance(inputs, (bytes, bytearray)):
        array, rate = read_audio_bytes(bytes(inputs), source)
        channels_first = False
    elif isinstance(inputs, dict):
        data = inputs.get("raw", inputs.get("array"))
        if data is None:
            if inputs.get("bytes"):
                array, rate = read_audio_bytes(inputs["bytes"], source)
            elif inputs.get("path"):
                array, rate = read_audio_file(inputs["path"], source)
            else:
                raise AudioDecodeError(source, 'an audio dict needs "array" (or "raw") and "sampling_rate"')
            channels_first = False
        else:
            if "sampling_rate" not in inputs:
                raise AudioDecodeError(source, 'an audio dict needs a "sampling_rate" beside its array')
            array, rate = _as_numpy(data, source), inputs["sampling_rate"]
            channels_first = True if array.ndim == 2 and array.shape[0] <= 2 < array.shape[1] else None
    elif isinstance(inputs, (np.ndarray, torch.Tensor, list)):
        if input_sampling_rate is None:
            raise AudioDecodeError(source, "a bare array needs its sampling_rate (pass sampling_rate=...)")
        array, rate = _as_numpy(inputs, source), input_sampling_rate
    elif is_torchcodec_decoder(inputs):
        array, rate = _decoder_samples(inputs, source)
        channels_first = True
    else:
        raise AudioDecodeError(source, f"unsupported input type {type(inputs).__name__}")

    is_number = isinstance(rate, (int, np.integer, float, np.floating)) and not isinstance(rate, (bool, np.bool_))
    if not is_number or not np.isfinite(rate) or rate <= 0 or int(rate) != rate:
        raise AudioDecodeError(source, f"invalid sampling rate {rate!r} (a positive whole number of Hz)")
    array = check_waveform(np.asarray(array), source)
    array = to_mono(array, source, channels_first)
    try:
        resampled = resample(array, int(rate), sampling_rate)
    except (MemoryError, RuntimeError, ValueError) as error:
        raise AudioDecodeError(source, f"cannot resample from {int(rate)} Hz to {sampling_rate} Hz: {error}") from error
    if resampled.shape[0] == 0:
        raise AudioDecodeError(
            source,
            f"audio is too short: {array.shape[0]} samples at {int(rate)} Hz are 0 samples at {sampling_rate} Hz",
        )
    array = resampled
    return Audio(array=np.ascontiguousarray(array, dtype=np.float32), sampling_rate=sampling_rate, source=source)


# --------------------------------------------------------------------------------------------------------------------
# Streaming: long files read block by block
# --------------------------------------------------------------------------------------------------------------------
# Files longer than this are opened as a [`StreamedAudio`] by [`open_audio`] (shorter ones are decoded whole).
STREAM_MIN_SECONDS = 30.0
# Samples per block read (at the file's own rate): ~4 MB of float32 for stereo 44.1 kHz.
_BLOCK_FRAMES = 1 << 19


class StreamedAudio:
    """Mono float32 audio at `sampling_rate` read from a file on demand, block by block, never held whole.

    A file at `sampling_rate` is read from where it lies (libsndfile seeks); any other rate is resampled once, in
    order, with `soxr`'s streaming resampler (the same samples as [`resample`] on the whole signal) into an
    anonymous temporary file that [`read`] takes from. The level checks of [`check_waveform`] ran over every block
    when it was opened. `array` reads it all (for the modes that need the whole waveform).
    """

    def __init__(self, path: str, sampling_rate: int, source: str, num_samples: int, spool: Any = None):
        self.path, self.sampling_rate, self.source = path, sampling_rate, source
        self._num_samples, self._spool = num_samples, spool

    @property
    def num_samples(self) -> int:
        return self._num_samples

    @property
    def duration(self) -> float:
        return self._num_samples / self.sampling_rate

    @property
    def array(self) -> np.ndarray:
        return self.read(0, self._num_samples)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples `[start, stop)` (clipped to the audio) as `(n,)` float32."""
        start, stop = max(start, 0), min(stop, self._num_samples)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        if self._spool is not None:
            data = os.pread(self._spool.fileno(), (stop - start) * 4, start * 4)
            return np.frombuffer(data, dtype=np.float32).copy()
        import soundfile

        with soundfile.SoundFile(self.path) as sound:
            sound.seek(start)
            block = sound.read(stop - start, dtype="float32", always_2d=True)
        return block[:, 0].copy() if block.shape[1] == 1 else block.mean(axis=1)


def open_audio(inputs: Any, sampling_rate: int = 16000, input_sampling_rate: int | None = None):
    """[`load_audio`], except that a path to a file libsndfile reads and longer than `STREAM_MIN_SECONDS` gives a
    [`StreamedAudio`] (memory flat in the file's length). Returns an [`Audio`] or a [`StreamedAudio`]."""
    if isinstance(inputs, StreamedAudio):
        return inputs
    if isinstance(inputs, dict) and inputs.get("path") and all(inputs.get(key) is None for key in ("raw", "array", "bytes")):
        path, source = inputs["path"], str(inputs["path"])
    elif isinstance(inputs, (str, os.PathLike)) and not str(inputs).startswith(("http://", "https://")):
        path, source = os.fspath(inputs), os.fspath(inputs)
    else:
        return load_audio(inputs, sampling_rate, input_sampling_rate)
    streamed = _open_streamed(os.fspath(path), source, sampling_rate)
    return streamed if streamed is not None else load_audio(inputs, sampling_rate, input_sampling_rate)


def _open_streamed(path: str, source: str, sampling_rate: int) -> StreamedAudio | None:
    """A [`StreamedAudio`] of a long regular file libsndfile or ffmpeg opens; `None` where [`load_audio`] should
    decode it."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        import soundfile

        with soundfile.SoundFile(path) as sound:
            declared, rate = sound.frames, int(sound.samplerate)
    except OSError:  # a missing or unreadable file: the whole-file way names the problem
        return None
    except Exception:  # noqa: BLE001 - not libsndfile's: ffmpeg's way (or the whole-file way, with its messages)
        return _open_ffmpeg_streamed(path, source, sampling_rate)
    if rate <= 0 or declared / rate <= STREAM_MIN_SECONDS:
        return None
    spool = None if rate == sampling_rate else tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the audio
    audio, frames_read = _streamed(path, path, source, rate, declared / rate, sampling_rate, spool)
    if not _cut_short(declared / rate, frames_read / rate):  # libsndfile counts a WAV's frames from its size
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
        _warn_if_wav_truncated(head, frames_read, rate, source, file_size=os.path.getsize(path))
    return audio


def _open_ffmpeg_streamed(path: str, source: str, sampling_rate: int) -> StreamedAudio | None:
    """A [`StreamedAudio`] of a file longer than `STREAM_MIN_SECONDS` that only ffmpeg decodes: an ffmpeg subprocess
    decodes it (first audio stream, its own rate and channels) into a temporary float WAV, read in blocks like any
    long file into the audio's spool, then deleted; no whole array in Python. `None` where [`load_audio`] should
    decode it whole and give its messages (no ffmpeg, not audio, no declared length or a short one, ffmpeg fails)."""
    ffmpeg = shutil.which("ffmpeg")
    probe = None if ffmpeg is None else _ffmpeg_stream_info(ffmpeg, None, path)
    if probe is None or probe[2] is None or probe[2] <= STREAM_MIN_SECONDS:
        return None
    with tempfile.TemporaryDirectory() as folder:
        decoded = os.path.join(folder, "decoded.wav")
        command = [ffmpeg, "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-acodec", "pcm_f32le",
                   "-rf64", "auto", "-f", "wav", decoded]  # RF64 past 4 GB
        if subprocess.run(command, capture_output=True, check=False).returncode != 0:
            return None
        import soundfile

        rate = soundfile.info(decoded).samplerate
        # a container's declared length against what decoded (ffmpeg stops silently at a cut), as `_ffmpeg_decode`
        return _streamed(decoded, path, source, rate, probe[2], sampling_rate, tempfile.TemporaryFile())[0]  # noqa: SIM115


def _streamed(
    read_path: str, path: str, source: str, rate: int, declared_seconds: float, sampling_rate: int, spool: Any
) -> tuple[StreamedAudio, int]:
    """Scans `read_path` (at `rate`) into a [`StreamedAudio`] of `path` (and the frames it read at `rate`), warning
    when it holds less than declared."""
    try:
        frames_read, num_samples = _scan(read_path, source, rate, sampling_rate, spool)
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    if _cut_short(declared_seconds, frames_read / rate):
        _warn_truncated(source, "file", declared_seconds, frames_read / rate)
    if num_samples == 0:
        raise AudioDecodeError(source, f"audio is too short: {frames_read} samples at {rate} Hz are 0 samples")
    return StreamedAudio(path, sampling_rate, source, num_samples, spool), frames_read


def _scan(path: str, source: str, rate: int, sampling_rate: int, spool: Any) -> tuple[int, int]:
    """Reads the file once in blocks: the level checks over all of it, and (with `spool`) the mono signal at
    `sampling_rate` written there. Returns `(frames read at the file's rate, samples at sampling_rate)`."""
    import soundfile
    import soxr

    resampling = spool is not None and rate != sampling_rate
    stream = soxr.ResampleStream(rate, sampling_rate, 1, dtype="float32", quality="HQ") if resampling else None
    frames_read = written = non_finite = 0
    peak = 0.0
    with soundfile.SoundFile(path) as sound:
        while True:
            block = sound.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            last = block.shape[0] < _BLOCK_FRAMES
            frames_read += block.shape[0]
            finite = np.isfinite(block)
            non_finite += int(block.size - np.count_nonzero(finite))
            if block.size:
                peak = max(peak, float(np.abs(np.where(finite, block, 0)).max()))
            if spool is not None:
                mono = np.ascontiguousarray(block[:, 0] if block.shape[1] == 1 else block.mean(axis=1), dtype=np.float32)
                out = mono if stream is None else stream.resample_chunk(mono, last=last)
                spool.write(out.tobytes())
                written += out.shape[0]
            if last:
                break
    if frames_read == 0:
        raise AudioDecodeError(source, "audio is empty (0 samples)")
    _check_levels(non_finite, peak, source)
    return frames_read, frames_read if spool is None else written


def is_torchcodec_decoder(inputs: Any) -> bool:
    """A `torchcodec.decoders.AudioDecoder` (what `datasets` 5.x returns for decoded audio, and its subclass there),
    recognised by class without importing torchcodec, which need not be installed."""
    return any(
        cls.__name__ == "AudioDecoder" and cls.__module__.split(".")[0] in ("torchcodec", "datasets")
        for cls in type(inputs).__mro__
    )


def _decoder_samples(decoder: Any, source: str) -> tuple[np.ndarray, int]:
    """`(channels, samples)` array and rate of every sample of a torchcodec `AudioDecoder`."""
    try:
        samples = decoder.get_all_samples()
    except Exception as error:  # noqa: BLE001 - torchcodec raises RuntimeError and others for bad streams
        raise AudioDecodeError(source, f"the audio decoder failed: {error}") from error
    return _as_numpy(samples.data, source), int(samples.sample_rate)


def _as_numpy(data: Any, source: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        return data.detach().cpu().float().numpy()
    try:
        return np.asarray(data)
    except (TypeError, ValueError) as error:
        raise AudioDecodeError(source, f"cannot read audio array: {error}") from error


__all__ = [
    "MAX_SAMPLE_PEAK",
    "STREAM_MIN_SECONDS",
    "Audio",
    "AudioDecodeError",
    "AudioTruncatedWarning",
    "StreamedAudio",
    "describe_input",
    "load_audio",
    "open_audio",
    "resample",
    "to_mono",
]
