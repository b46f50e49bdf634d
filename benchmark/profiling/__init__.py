"""``python -m benchmark profile``: where a run's time and memory go, beside the floors they are measured against.

- :mod:`.stages`: the stage recorder the pipeline's hooks feed (``with stage("fit", model):``);
  a no-op unless a profile is recording, so ``run`` keeps the hooks;
- :mod:`.memory`: peak resident memory per stage, and the process's age;
- :mod:`.cache`: a cold, temporary feature cache (and a throwaway tracking store);
- :mod:`.floors`: the floors: a bare ``model.fit`` of the same network, a plain batched STFT;
- :mod:`.pipeline`: one unit per model through the real pipeline, then its floors;
- :mod:`.synthetic`: random inputs of the experiment's shape, no audio: fit speed alone;
- :mod:`.machine`: what the numbers were measured on;
- :mod:`.report`: the profile as JSON-ready values, ratios and the printed table.

Only :mod:`.stages` (standard library alone) is imported by the pipeline; the rest is imported
by the ``profile`` verb when it runs.
"""

from benchmark.profiling.stages import recording, stage

__all__ = ["recording", "stage"]
