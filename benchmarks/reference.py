"""Ours vs the original `whisper-at` package (PyPI `whisper-at==0.5`) on the same weights and audio.

The original tags inside its transcription loop: after each decoded 30 s window it runs the TL-TR head on that
window's pooled states, one head call per window, and writes the result into the tag grid (windows after a seek
that is not on the tag grid are read from where the seek landed). Ours runs Whisper's generate and then the head
once over all windows of the input (batched), on the absolute grid.

Both sides get real `whisper-tiny.en` weights (the original model is filled with the very same tensors by
`export_original_checkpoint`) and the same random TL-TR head. Contenders, interleaved, `--repeats` times after a warm-up:

* `original`       `whisper_at.transcribe(model, audio, ...)`: greedy, temperature 0, no previous-text conditioning
* `ours`           `pipeline("whisper-at")`, Whisper's sequential long-form decoding, the same settings
* `ours chunked`   the same pipeline with `chunk_length_s=30, batch_size=4` (chunks batched; tags from the chunks)
* `transformers`   plain `pipeline("automatic-speech-recognition")` on the same weights and settings, no tags: it
                   separates what transformers' decoding costs next to OpenAI's from what tagging costs

Printed per contender: wall time, the time spent in the head and how many head calls ran (a timer around the
original's `at_model.forward` and our `tag_pooled`), and the tags' agreement with ours on the aligned windows.

    python benchmarks/reference.py                       # long_mix.wav (89 s) and speech_en.wav, 3 repetitions
    python benchmarks/reference.py --clips long_mix.wav --repeats 5 --max-tokens 96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import _common
from _common import SHARED_MODELS, interleaved, load_clip, machine, median, ratios, summary

from transformers import WhisperProcessor, pipeline  # noqa: E402
from whisper_at_hf import WhisperForAudioTaggingAndASR  # noqa: E402
from whisper_at_hf.original_format import export_original_checkpoint  # noqa: E402


class CallTimer:
    """Wraps a bound method: counts its calls and sums their wall time."""

    def __init__(self, owner: object, name: str):
        self.calls, self.seconds = 0, 0.0
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0


def original_from_ours(model: WhisperForAudioTaggingAndASR):
    """The original package's model holding our model's tensors (exported in the original release's formats)."""
    from whisper_at.model import ModelDimensions, Whisper

    whisper_checkpoint, head_state = export_original_checkpoint(model)
    original = Whisper(ModelDimensions(**whisper_checkpoint["dims"]), at_low_compute=model.config.at_low_dim is not None)
    original.load_state_dict({**whisper_checkpoint["model_state_dict"], **head_state})
    return original.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(SHARED_MODELS / "whisper-tiny.en"), help="an English-only Whisper dir")
    parser.add_argument("--clips", nargs="+", default=["long_mix.wav", "speech_en.wav"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=96, help="tokens per 30 s window (both sides)")
    parser.add_argument("--at-time-res", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import whisper_at

    print(machine())
    torch.manual_seed(0)
    model = WhisperForAudioTaggingAndASR.from_whisper(args.model, dtype=torch.float32).eval()
    if model.config.vocab_size != 51864:
        raise SystemExit("use an English-only Whisper: both sides are then told nothing about the language")
    original = original_from_ours(model)
    processor = WhisperProcessor.from_pretrained(args.model)
    tagger = pipeline(
        "whisper-at", model=model, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor
    )
    asr = pipeline(
        "automatic-speech-recognition", model=args.model, dtype=torch.float32,
        tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor,
    )
    original_head = CallTimer(original.at_model, "forward")
    our_head = CallTimer(model, "tag_pooled")

    # greedy as the original's transcribe() (the ASR pipeline would default to 5 beams)
    generate_kwargs = {
        "num_beams": 1, "temperature": 0.0, "condition_on_prev_tokens": False, "max_new_tokens": args.max_tokens,
    }
    tag_kwargs = {"at_time_res": args.at_time_res, "return_tag_logits": True, "return_timestamps": True}

    def run_original(audio):
        return whisper_at.transcribe(
            original, torch.from_numpy(audio), temperature=0.0, condition_on_previous_text=False, fp16=False,
            at_time_res=args.at_time_res, sample_len=args.max_tokens, verbose=None,
        )

    def run_ours(audio, **kwargs):
        return tagger(audio.copy(), generate_kwargs=generate_kwargs, **tag_kwargs, **kwargs)

    failed = False
    for name in args.clips:
        audio = load_clip(name)
        seconds = len(audio) / 16000
        contenders = {
            "original": lambda: run_original(audio),
            "ours": lambda: run_ours(audio),
            "ours chunked": lambda: run_ours(audio, chunk_length_s=30, batch_size=4, ignore_warning=True),
            "transformers": lambda: asr(audio.copy(), return_timestamps=True, generate_kwargs=generate_kwargs),
        }
        if seconds <= 30:
            del contenders["ours chunked"]  # one window: chunking changes nothing
        print(f"\n[{name}] {seconds:.1f} s, {args.max_tokens} tokens per window at most, {args.repeats} repetitions")

        # one recorded run each: head calls and time, texts, tags
        head_use, outputs, tokens = {}, {}, {}
        for label, run in contenders.items():
            original_head.reset()
            our_head.reset()
            outputs[label] = run()
            timer = original_head if label == "original" else our_head
            head_use[label] = (timer.calls, timer.seconds)
            tokens[label] = len(processor.tokenizer(outputs[label]["text"], add_special_tokens=False).input_ids)
        ours_logits = torch.as_tensor(outputs["ours"]["audio_tag_logits"])
        theirs = outputs["original"]["audio_tag"]
        windows = min(len(ours_logits), len(theirs))
        difference = (theirs[:windows] - ours_logits[:windows]).abs().amax(dim=-1)
        for label, output in outputs.items():
            if label in ("original", "transformers"):
                continue
            logits = torch.as_tensor(output["audio_tag_logits"])
            failed |= not torch.allclose(logits, ours_logits, atol=1e-4)  # both of ours: the same absolute grid

        times = interleaved(contenders, args.repeats, args.warmup)
        print(f"  {'contender':<14}{'seconds, median [range]':>28}{'vs original':>26}{'head calls':>12}{'head s':>9}"
              f"{'text tokens':>13}")
        for label in contenders:
            versus = summary(ratios(times[label], times["original"]), "{:.3f}") + "x"
            calls, head_seconds = head_use[label]
            print(f"  {label:<14}{summary(times[label], '{:.2f}'):>28}{versus:>26}{calls:>12}{head_seconds:>9.3f}"
                  f"{tokens[label]:>13}")
        tagging = ratios(times["ours"], times["transformers"])
        print(f"  ours / transformers (what tagging adds to the same decoding): {summary(tagging, '{:.3f}')}x")
        failed |= outputs["ours"]["text"] != outputs["transformers"]["text"]
        same_text = outputs["ours"]["text"].strip() == outputs["original"]["text"].strip()
        print(f"  tag windows: original {len(theirs)}, ours {len(ours_logits)}; max |logit difference| per window "
              f"(original - ours): {[round(float(d), 4) for d in difference]}")
        print(f"  text: ours == transformers: {outputs['ours']['text'] == outputs['transformers']['text']}; "
              f"ours == original: {same_text}")
        if not same_text:
            print(f"    original: {outputs['original']['text'][:160]!r}")
            print(f"    ours:     {outputs['ours']['text'][:160]!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
