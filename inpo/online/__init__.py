"""Online rounds (issue 14, docs/online_rounds.md): sample pairs from the current policy, label them
with the world's own labeller, train a round, evaluate with the labeller and a held-out guard, repeat.

:mod:`.pairs` makes a round's pair set; :mod:`.rounds` runs and resumes the rounds.
"""
