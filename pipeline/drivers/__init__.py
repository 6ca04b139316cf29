"""What drives detractors: the `drivers`, `driver_examples`, `detractor_terms`, `theme_windows`
and `coverage` tables.

For every rolling window (``drivers.windows`` days ending on a response date), every segment
cell (all responses, and each value of each configured segment) and every topic (leaves and
their parents), one row with the statistics defined in docs/drivers-statistics.md:

- counts, prevalence, NPS among mentions and among the rest;
- remove-the-topic impact with its interval; detractor rate with a Wilson interval; lift;
  relative risk and odds ratio with intervals; share of all detractors; share of negative
  mentions;
- adjusted ΔNPS and odds ratio from regressions with the co-mentioned topics and controls
  (pipeline/regression.py);
- Benjamini–Hochberg q-values per method, over every row of the same window (all segments,
  topics and levels): the family an analyst reads at once;
- flags: robust (impact, odds ratio and adjusted ΔNPS agree in direction, all three survive
  the FDR control, and the row is not low-confidence), rising (volume up against the previous
  periods, after FDR control), emerging (rising from below ``rare_share`` of responses) and
  low-confidence (fewer mentions or detractors than the configured minimum).

Every statistic is computed over all responses in the window, with or without a comment, so
NPS here is the NPS the rest of the tables report. Windows end on every date that has
responses; a run recomputes every window its dates can change (including the later periods
that compare themselves with them), so a re-run or a backfill leaves the same rows as running
the dates one by one.

The modules, in the order the work flows:

- ``refresh``: which window ends a run affects; deletes and rewrites their rows, a batch of
  window ends at a time;
- ``load``: a batch's responses read into arrays (`WindowData`); ``volumes``: the daily counts
  before each window that the rising test compares with;
- ``window``: one window's rows of all three tables, cell by cell and topic by topic;
- ``rows``: the statistics of a driver row, then the q-values and flags over the window;
  ``adjusted``: the adjusted columns; ``examples``: example comments; ``terms``: detractor terms;
  ``themes``: the same statistics for discovered themes (theme_windows) and what no topic
  covers (coverage).
"""

from pipeline.drivers.refresh import affected_range, refresh_drivers

__all__ = ["affected_range", "refresh_drivers"]
