"""The embedded toy world: coloured shapes on coloured backgrounds, an exact oracle, a tiny base.

world.py    scenes, prompts ("a red circle on a blue background"), rendering, PIL → tensor
prompts.py  the 120 prompts and their fixed split: 108 training, 12 held out
oracle.py   OracleScorer: the exact "human preference" (colour × background × shape IoU)
metrics.py  guard metrics training never sees: prompt-following accuracy, sample diversity
model.py    the base's SD1.5-layout folder in pixel space (build, save, load)
sampling.py DDIM sampling with classifier-free guidance
base.py     `inpo toy base`: the from-scratch training recipe of the shipped base
pairs.py    `inpo toy pairs`: oracle-labelled Pick-a-Pic v2 shaped preference pairs
figures.py  PNG grids of samples and pairs
"""
