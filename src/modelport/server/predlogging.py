"""Hands every prediction (and every failed one) to the prediction-log writer, never slowing a request.

A request becomes one record per row (``route`` primary, canary or shadow; ``source="online"``) through
:func:`~modelport.runtime.predlog.request_records`; the writer queues them without blocking and
counts what it drops. A model's redaction rules (from its bundle) are registered with the writer's
redactor when the model loads; when they cannot be honoured (no redactor, or no key for ``hash``),
that model's inputs are left out of the log rather than written raw.
"""

from __future__ import annotations

import logging
from typing import Any

from modelport.runtime.predlog import PredictionLogWriter, request_records
from modelport.server.served import Results, ServedVersion

logger = logging.getLogger("modelport.server")


class PredictionLogging:
    """The server's side of the prediction log.

    Args:
        writer: The started-by-the-app writer.
    """

    def __init__(self, writer: PredictionLogWriter) -> None:
        self.writer = writer
        self._without_inputs: set[str] = set()

    def register(self, served: ServedVersion) -> None:
        """Apply ``served``'s redaction rules, or stop logging its inputs when they cannot apply."""
        rules = dict(served.predictor.manifest.redaction)
        if not rules:
            self._without_inputs.discard(served.name)
            return
        redactor = self.writer.redactor
        try:
            if redactor is None:
                raise LookupError("the prediction log has no redactor")
            redactor.set_rules(served.name, rules)
            self._without_inputs.discard(served.name)
        except Exception as exc:  # never write raw values of redacted columns
            self._without_inputs.add(served.name)
            logger.warning(
                "Prediction log: inputs of %s are not logged: its redaction rules cannot be applied (%s).",
                served.name,
                exc,
            )

    def log(
        self,
        *,
        request_id: str,
        served: ServedVersion,
        inputs: Any,
        outputs: Results | None,
        latency_ms: float,
        error: BaseException | None,
        route: str = "primary",
    ) -> None:
        """Queue the records of one request (``route``: primary, canary or shadow); failures are swallowed."""
        try:
            records = request_records(
                model=served.name,
                version=served.version,
                request_id=request_id,
                inputs=None if served.name in self._without_inputs else inputs,
                outputs=outputs,
                latency_ms=latency_ms,
                error=error,
                route=route,
                source="online",
                columns=served.signature.column_names or None,
            )
            self.writer.log_many(records)
        except Exception as exc:  # logging never fails a request
            logger.warning("Prediction log: request %s not logged (%s)", request_id, type(exc).__name__)
