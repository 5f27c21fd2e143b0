"""A Hugging Face Space for the Whisper-AT demo: live captions and sound tags from the microphone, offline results
for an uploaded file. `$WHISPER_AT_MODEL` picks the model (a variant name, a checkpoint folder or a Hub id; default:
the CLI's default variant). Locally: `python app.py` (or `whisper-at-demo`)."""

import os

from whisper_at_hf.demo import build_demo, load_pipeline

demo = build_demo(load_pipeline(os.environ.get("WHISPER_AT_MODEL")))

if __name__ == "__main__":
    demo.queue().launch()
