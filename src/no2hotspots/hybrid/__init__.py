"""The ``hybrid`` stage: the model's period sites confirmed by the physics of the classical baseline.

A site of the model's period composite (by default the recurrence rule's sites before its downwind test) is kept
when the baseline's period-mean flux divergence (Beirle et al.: ``div(V w) + V / tau``, the baseline stage's
``period.nc``) stands out of that map's background at the site: a real source emits, so its flux divergence is
positive; a cell where the model's peaks recur without a source (a plume's far part, a noise cluster) has none.
The baseline's own sites join them where no kept site lies near (``hybrid.baseline_sites``). The model proposes,
the flux divergence confirms; the evaluation scores the result as its own table (``hybrid``), beside the model's
composite and the baseline, which stay as they were. :mod:`.confirm` is the rule, :mod:`.run` the stage.
"""
