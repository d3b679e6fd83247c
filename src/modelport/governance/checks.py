"""User checks shipped in a bundle: ``artifacts/checks.py`` with ``check_*(predictor, holdout)`` functions.

Running shipped code is as dangerous as unpickling, so it needs the operator's trust, exactly like
pickle artifacts: without ``trusted_code=True`` (``MODELPORT_TRUSTED_PICKLE=true`` or the CLI's
trust flag) the gate is ``skipped``, which a policy requiring ``checks`` treats as not passed.
With trust, the file's sha256 is checked against the manifest on the very bytes that run (after
the registry already verified the whole bundle), it runs as a fresh module that is never added to
``sys.modules``, and :class:`~modelport.bundle.flavors.base.PickleLoadWarning` is emitted. Each
``check_*`` function, in name order, receives the :class:`~modelport.runtime.predictor.Predictor`
and the holdout DataFrame (target included; ``None`` without a holdout). A check fails when it
raises (an ``assert`` is the usual way) or returns ``False``; anything else passes.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport.bundle.flavors.base import PickleLoadWarning
from modelport.bundle.hashing import sha256_bytes
from modelport.bundle.manifest import ARTIFACTS_DIR, Manifest
from modelport.core.errors import IntegrityError
from modelport.governance.gates import describe
from modelport.governance.holdout import Holdout
from modelport.registry.validations import GateResult
from modelport.runtime.predictor import Predictor

CHECKS_FILE = f"{ARTIFACTS_DIR}/checks.py"
"""Where a bundle ships its checks (listed and hashed in the manifest like any artifact)."""


def shipped_checks(manifest: Manifest) -> bool:
    """Whether the bundle lists a ``checks.py``."""
    return any(entry.path == CHECKS_FILE for entry in manifest.artifacts)


def load_checks(bundle_dir: Path, manifest: Manifest) -> dict[str, Callable[..., Any]]:
    """Run the bundle's ``checks.py`` as a fresh module and return its ``check_*`` functions by name.

    Only call it with the operator's trust: the file's code runs.

    Raises:
        IntegrityError: The file's bytes do not match the manifest.
    """
    entry = next(e for e in manifest.artifacts if e.path == CHECKS_FILE)
    source = (bundle_dir / CHECKS_FILE).read_bytes()
    if sha256_bytes(source) != entry.sha256:
        raise IntegrityError(
            f"{bundle_dir / CHECKS_FILE} does not match its manifest hash.",
            hint="The bundle was modified after it was saved; fetch it again from the registry.",
        )
    warnings.warn(
        f"Running checks.py shipped in bundle {manifest.name}:{manifest.version} (trusted by the operator).",
        PickleLoadWarning,
        stacklevel=2,
    )
    module = types.ModuleType(f"modelport_checks_{manifest.name.replace('-', '_').replace('.', '_')}")
    module.__file__ = str(bundle_dir / CHECKS_FILE)
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # trusted by the operator (see above)
    return {
        name: value
        for name, value in sorted(vars(module).items())
        if name.startswith("check_") and callable(value) and getattr(value, "__module__", None) == module.__name__
    }


def checks_gate(predictor: Predictor, bundle_dir: Path, holdout: Holdout | None, *, trusted_code: bool) -> GateResult:
    """Run the bundle's ``check_*`` functions (see the module docstring)."""
    manifest = predictor.manifest
    if not shipped_checks(manifest):
        return GateResult("checks", "not_applicable", "the bundle ships no checks.py")
    if not trusted_code:
        return GateResult(
            "checks",
            "skipped",
            "the bundle ships checks.py, which runs code: not run without the operator's trust "
            "(trusted_code=True / MODELPORT_TRUSTED_PICKLE=true)",
        )
    try:
        found = load_checks(bundle_dir, manifest)
    except Exception as exc:  # a checks file that does not even import fails the gate
        return GateResult("checks", "failed", f"checks.py failed to load: {describe(exc)}")
    if not found:
        return GateResult("checks", "not_applicable", "checks.py defines no check_* function")
    frame = holdout.frame.copy() if holdout is not None else None
    results: dict[str, str] = {}
    for name, check in found.items():
        try:
            outcome = check(predictor, frame)
            results[name] = "failed: returned False" if outcome is False else "passed"
        except Exception as exc:  # a failing user check is a failed gate, never a crash
            results[name] = f"failed: {describe(exc)}"
    failed = [f"{name} ({result[len('failed: ') :]})" for name, result in results.items() if result != "passed"]
    details = {"checks": results}
    if failed:
        return GateResult(
            "checks", "failed", f"{len(failed)} of {len(results)} check(s) failed: {'; '.join(failed)}", details
        )
    return GateResult("checks", "passed", f"{len(results)} check(s) passed", details)
