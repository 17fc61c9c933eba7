"""`soundalike eval`: how well the catalogue's vectors separate artists, written as a report.

Gathers tracks (the store's, or a folder/manifest), samples `sample` per artist with a fixed
seed, and either takes the stored vectors as they are or re-decodes the audio with the stored
spec's excerpt and window and embeds it again. Re-embedding runs the model once per window with
every hidden state returned, so a sweep over all 13 layers costs one embedding of the sample.

Modules: `options` (what is asked), `gather` (which tracks), `embedding` (re-embedding them),
`metrics` (the figures), `compare` and `reference` (optional sections), `plots` and `report`
(what is written), `run` (`run_evaluation`, tying them together).
"""

from soundalike.ingest.evaluation.options import EvaluationOptions
from soundalike.ingest.evaluation.run import EvalResult, LoadModel, run_evaluation

__all__ = ["EvalResult", "EvaluationOptions", "LoadModel", "run_evaluation"]
