"""Theme discovery: groups of sentences that no taxonomy topic names, followed night to night.

Every response date, in order (`pipeline.themes.discover`):

1. the day's sentences (those with at least ``themes.min_keywords`` content words) join the open
   theme whose centroid is most similar, when the cosine reaches ``themes.assign_similarity``;
2. the rest join the pool of the last ``themes.pool_days`` days when they are novel: no sentence
   of the ``pool_days`` before them reaches ``themes.novelty_similarity``. Everyday comments
   repeat what was said last week and never start a theme; a problem nobody named yet starts as
   sentences unlike anything before;
3. the pool is clustered (PCA + scikit-learn's HDBSCAN, `pipeline.themes.cluster`); a cluster's
   tight core joins the open theme it is close to, or starts a new theme, whose id is its
   creation date and a hash of its founding sentences;
4. themes whose centroids come within ``themes.merge_similarity`` merge into the older one;
   themes with no new sentence for ``themes.fade_days`` fade (and revive with the next one).

Vectors are the model's sentence vectors, stored once per sentence and model in
``sentence_vectors``, centred on the model's mean vector (`models.centre`). Each theme is
labelled by class-based TF-IDF over its sentences' lemmas and noun phrases, with diverse example
sentences, its nearest taxonomy topic and whether the taxonomy covers it
(`pipeline.themes.label`). A run rolls back to its first replaced date and replays to the newest
(`pipeline.themes.refresh`); per-window statistics of each theme are computed with the drivers
(`pipeline.drivers.themes`).
"""

from pipeline.themes.refresh import refresh_themes

__all__ = ["refresh_themes"]
