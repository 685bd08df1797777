"""Metrics and traces for asyncbatch batches, as ready ``Hooks``.

- ``EMFHooks``: one CloudWatch Embedded Metric Format line per batch (no dependency).
- ``OpenTelemetryHooks``: a span per batch, optionally per record
  (the ``otel`` extra: ``pip install -e '.[otel]'`` in a clone; OpenTelemetry is imported
  when one is created).

::

    from asyncbatch.telemetry import EMFHooks

    processor = AsyncBatchProcessor(hooks=EMFHooks(namespace="orders"))

``import asyncbatch`` does not import this package.
"""

from .emf import EMFHooks
from .otel import OpenTelemetryHooks

__all__ = ["EMFHooks", "OpenTelemetryHooks"]
