"""demo: browser chunks to 16 kHz, the captions and timeline HTML, a live session, and the app in a real browser
(Debian's chromium through Playwright, a fake microphone fed from speech_en.wav)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO_ROOT, SHARED_AUDIO

from whisper_at_hf.demo import as_16k_mono, captions_html, timeline_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CLIP_WORDS = ("quick", "fox", "whisper", "recognize", "lot", "background", "noise")  # tiny.en hears these reliably


def test_browser_chunks_become_16k_mono_float():
    stereo = (np.ones((4800, 2)) * [8192, -8192] + [8192, 8192]).astype(np.int16)  # 0.1 s at 48 kHz
    mono = as_16k_mono(48000, stereo)
    assert mono.dtype == np.float32 and mono.shape == (1600,)
    assert np.allclose(mono[200:-200], 0.25, atol=1e-3)  # (0.5 + 0) / 2


def test_captions_and_timeline_html():
    update = {"committed_text": "Hello <world>", "tentative_text": "and", "audio_time": 40.0}
    text = captions_html(update)
    assert "Hello &lt;world&gt;" in text and "opacity" in text and "and" in text
    events = {
        ("Music", 5.0): {"label": "Music", "start": 5.0, "end": 8.0, "score": 0.9},  # older than the last 30 s
        ("Music", 20.0): {"label": "Music", "start": 20.0, "end": 25.0, "score": 0.9},
        ("Dog", 35.0): {"label": "Dog", "start": 35.0, "end": None, "score": 0.7},  # ongoing: runs to now
    }
    timeline = timeline_html(events, 40.0)
    assert timeline.count("position:absolute") == 2 and "Dog" in timeline and "10 s … 40 s" in timeline
    assert "left:33.3%;width:16.7%" in timeline and "left:83.3%;width:16.7%" in timeline
    many = {(f"L{i}", 30.0): {"label": f"L{i}", "start": 30.0, "end": 31.0, "score": i / 20} for i in range(20)}
    rows = timeline_html(many, 40.0)
    assert rows.count("position:absolute") == 8 and "L19" in rows and "L11" not in rows  # the strongest labels


@pytest.mark.needs_shared
def test_a_session_whose_tab_closed_ends_its_stream_thread(tiny_en_at_dir):
    """Gradio deletes a session's state when its tab closes (no stop event): the delete callback wired to the live
    state closes the stream, whose thread commits what it heard and exits."""
    import torch

    from whisper_at_hf import WhisperForAudioTaggingAndASR
    from whisper_at_hf.demo import SESSION_TTL_S, LiveSession, build_demo, close_session

    model = WhisperForAudioTaggingAndASR.from_pretrained(tiny_en_at_dir, dtype=torch.float32).eval()
    session = LiveSession(model, step_s=1.0)
    audio, _ = sf.read(SHARED_AUDIO / "speech_en.wav", dtype="float32")
    session.push(16000, audio[: 16000 * 2])
    assert session.thread.is_alive()
    close_session(session)
    close_session(session)  # idempotent; and a state that holds no session is ignored
    close_session(None)
    session.thread.join(timeout=120)
    assert not session.thread.is_alive() and session.error is None
    assert session.update is not None and session.update["audio_time"] == pytest.approx(2.0)
    session.push(16000, audio[:1600])  # a late chunk after the close goes nowhere
    assert session._inbox.empty()
    states = [block for block in build_demo(model).blocks.values() if type(block).__name__ == "State"]
    assert [(state.delete_callback, state.time_to_live) for state in states] == [(close_session, SESSION_TTL_S)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.needs_shared
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (apt-get install chromium)")
def test_live_page_in_a_real_browser_shows_words_and_changing_tags(tiny_en_at_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen(
        [sys.executable, "-m", "whisper_at_hf.demo", "--model", str(tiny_en_at_dir), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, server, timeout=300)
        speech = tmp_path / "speech.wav"  # Chromium's fake microphone reads 16-bit PCM WAV
        audio, rate = sf.read(SHARED_AUDIO / "speech_en.wav", dtype="int16")
        sf.write(speech, np.concatenate([audio, np.zeros(rate * 2, dtype=np.int16)]), rate, subtype="PCM_16")
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={speech}",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        ]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.get_by_role("button", name="Record").first.click()
            seen_tags, words = set(), ""
            deadline = time.monotonic() + 420
            while time.monotonic() < deadline:
                time.sleep(2)
                seen_tags.add(page.locator("#live-tags").inner_text())
                words = page.locator("#live-captions").inner_text().lower()
                if sum(word in words for word in CLIP_WORDS) >= 3 and len(seen_tags) > 2:
                    break
            page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
            if os.environ.get("WHISPER_AT_DEMO_SCREENSHOT"):
                page.screenshot(path=os.environ["WHISPER_AT_DEMO_SCREENSHOT"])
            browser.close()
        assert sum(word in words for word in CLIP_WORDS) >= 3, words
        assert len(seen_tags) > 2, seen_tags  # the tag bars change with the audio
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the demo exited: {server.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the demo did not answer at {url} within {timeout:g} s")


def test_without_gradio_the_demo_says_how_to_get_it(monkeypatch, capsys):
    from whisper_at_hf import demo

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--model", "unused"])
    assert exit_info.value.code == 2 and 'pip install "whisper-at-hf[demo]"' in capsys.readouterr().err
