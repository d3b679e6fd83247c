"""Layer 3: monitoring — what the prediction log says about a deployed model.

``logs`` queries the log, ``drift`` compares it with a version's reference statistics,
``feedback`` stores ground truth and ``performance`` turns it into live metrics, ``traffic``
counts predictions, errors and latency, ``alerts`` checks limits and calls a webhook, and
``dashboard`` serves all of it as charts (with ``feedback_routes`` for ``POST .../feedback``).
Everything reads the log through the locked-down DuckDB view of ``logview``.
"""
