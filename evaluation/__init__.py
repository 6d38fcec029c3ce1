"""Evaluation: the four published scorers and the toy oracle behind one interface, prompt sets with
fixed seeds, the per-image score table, and statistics (medians, means, win-rates with bootstrap
intervals).

- :mod:`evaluation.scorers` — ``build_scorer(name, cfg.eval, device)`` → ``Scorer``
- :mod:`evaluation.prompts` — ``load_prompt_set(name)``, ``eval_items(cfg.eval, base_seed)``
- :mod:`evaluation.score_table` — ``score_rows``, ``write_scores`` / ``read_scores`` (parquet)
- :mod:`evaluation.stats` — pure numpy statistics; :mod:`evaluation.compare` — tables of them
"""
