"""One module per pipeline stage: ``run(cfg, **options)`` loads nothing it is not given, calls the
library, and writes its outputs (atomically) plus a metrics JSON. Heavy imports stay inside ``run``
so that ``inpo --help`` is fast. DVC stages and Prefect tasks call these through ``inpo <stage>``."""
