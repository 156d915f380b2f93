"""Training-data augmentation: synthetic examples for rare codes (``autocoder synth``)."""

from autocoder.augment.synth import (
    SYNTH_COLUMNS,
    SynthPlan,
    count_examples,
    plan_synth,
    rare_codes,
    synth_file,
)

__all__ = ["SYNTH_COLUMNS", "SynthPlan", "count_examples", "plan_synth", "rare_codes", "synth_file"]
