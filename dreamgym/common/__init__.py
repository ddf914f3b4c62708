"""Infrastructure every layer shares: crash-safe files (:mod:`~dreamgym.common.io`), Ray
(:mod:`~dreamgym.common.cluster`: joining a cluster, a fault-tolerant actor pool), derived seeds
(:mod:`~dreamgym.common.seeding`), run logs and curves (:mod:`~dreamgym.common.runs`), the
device (:mod:`~dreamgym.common.device`) and torch's threads per kind of work
(:mod:`~dreamgym.common.threads`)."""
