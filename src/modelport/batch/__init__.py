"""Layer 3: batch scoring jobs, schedules and run records.

A job reads a source in chunks, scores each with the runtime's Predictor and commits it, with its
checkpoint, to a sink, exactly once per row, resumable after any stop. Entry points:
:func:`modelport.batch.spec.run_spec` (a :class:`~modelport.batch.spec.JobSpec`: model reference,
input, output, options) and the lower-level :func:`modelport.batch.job.run_job`;
:class:`modelport.batch.schedule.Scheduler` for cron schedules. Modules: ``options`` (JobOptions),
``sources``/``file_source``/``sql_source``, ``sinks``/``file_sink``/``sql_sink``, ``scoring`` and
``screening`` (outputs and rejects), ``engine`` (read → score → commit pipeline), ``job``,
``spec``, ``schedule``, ``clock``, ``progress``, ``runlog`` (prediction-log records), ``database``.
"""
