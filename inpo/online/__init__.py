"""Online rounds (issue 14, docs/online_rounds.md): sample pairs from the current policy, label them
with the world's own labeller, train a round, evaluate with the labeller and a held-out guard, repeat.

:mod:`.rounds`: the plan, the records and the stopping rule; :mod:`.tracking`: the MLflow runs. The
pairs come from the world plug (:meth:`inpo.worlds.World.make_round_pairs`) when the world has its own
labeller, else from :mod:`.scored_pairs` (AI feedback from the ``relabel`` judges); one round is run by the
stage :func:`inpo.stages.online.run_round`.
"""
