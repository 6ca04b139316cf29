"""Encoders, classification heads, training, evaluation and the default-model registry."""

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
