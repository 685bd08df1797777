"""The invariant fuzzer: random batches, random faults, every rule of the contract checked.

What is generated (``scenario.py``): one scenario per seed, from ``random.Random(seed)``:
a backend (native asyncio, anyio on asyncio, trio); one to three ``process()`` calls
running at once (sometimes the same event twice, a duplicate delivery), or one event run
through ``asyncbatch.testing.simulate`` (redeliveries); per call a source (SQS, SQS FIFO in
both modes, Kinesis, DynamoDB Streams, Kafka in both orderings, Firehose transformations
from direct PUT, Kinesis or MSK; shuffled and mixed-length sequence numbers, two Kafka
topics, tumbling windows; SQS, Kinesis and DynamoDB batches as an EventBridge pipe hands
them, a top-level list; read by the plans in slices of 1 to 5 records or the default
2,048), 0 to 60 records (sometimes
thousands), concurrency 1 to 10,000 or an adaptive limit (one limit object shared by all
calls, sometimes), retries, a timeout, a failure sink that accepts, refuses, stalls or
hangs, ``sink_when`` and ``Retry(on=)`` that raise, hooks that raise, a window reducer that
raises, idempotency over a faulty store (raises, is slow, answers partly, or garbage; keys
seeded as completed or claimed by another invocation; keys shared between records), sync
handlers on threads, a Lambda deadline, caller cancellation; per record a plan per attempt:
succeed, raise, raise transiently, raise ``CancelledError`` itself, cancel its own task,
leak a cancel request, hang, raise exceptions whose ``__str__``/``__repr__`` raise; and a
latency. A fifth of the seeds lean on one theme (threads, stop rules, cancellation,
deadlines) to reach rare combinations.

How it runs (``vtime.py``, ``harness.py``): in virtual time on every backend: trio's
``MockClock``, and for asyncio a selector loop whose clock jumps to the next timer when
idle (``VirtualLoop``). Virtual time never jumps while a sync handler's thread computes, so
a hang is a thread that parks until the scenario ends. Trio runs with its scheduler
seeded and in its deterministic mode: a seed replays exactly, on every backend, except
where sync handlers' threads race each other. The fuzzer's own handler, hooks, sink,
predicates, reducer, key function and store record what they do in one total order.

What is checked (``checks.py``), on every call: exactly one status per record; the
response follows its source's rule (failures and skips in event order; SQS standard
reports only failures; Firehose answers every record, Ok with what its handler returned,
Dropped when the sink took it, ProcessingFailed with its data as it arrived; FIFO groups
stop at a failure, or the batch in stop mode; streams and Kafka keep the checkpoint
invariant per topic-partition); every status and error is
explained by the record's own plan (a record never pays for another's fault); attempts
and retries are counted, only transient failures retried; the bound holds (per call and
per shared limit); no lane runs two handler calls at once (abandoned threads included)
and lanes start in order; nothing starts above a decided checkpoint or after a decided FIFO
stop; the bound is reached at the start; the deadline is kept (nothing starts after the
stop time, nothing runs after the cancel time, ``process()`` returns before Lambda's
timeout); the window state folds exactly the records below the checkpoint; failed records
reach the log; claims are completed or released (or expire with the invocation). Per
scenario: no task left, no loop error, no unraisable exception, no never-awaited
coroutine, every log record formattable, no idempotency key running twice at once, an
idempotent effect at most once per key across calls and redeliveries.

``processor.stream()`` has a fuzzer of its own (``streams.py``, ``test_stream_fuzz.py``):
any iterable (a list, a generator, an async generator, one that raises part-way), keys with
or without ``resume_failed_keys``, ``ordered``, retries, timeouts, a rate limit, a Lambda
deadline, and a consumer that takes everything, leaves early, calls ``stop()`` or is
cancelled. Checked: one outcome per item read (each the item given, at its position), the
bound, read-ahead at most ``2 x concurrency``, per-key order and skips, attempts, outcomes
in input order when asked, nothing started after the deadline's stop or ``stop()``, the
rate limit's starts, the input's own error unchanged, no handler left running on leaving.

Known breaks of today's engine are stepped around by ``scenario.KNOWN_BREAKS`` (one entry
per break, each naming the strict-xfail test in ``test_regressions.py`` that pins it);
when a fix lands, delete the entry and the test's xfail mark.

Adding a source: a name in ``scenario.SOURCES``, its
event in ``events.build_event`` and its reading (identifier, sequence, checkpoint group,
lane) in ``events.read``, and its response rule in ``checks._source_rule``.

Run and replay::

    pytest tests/fuzz                              # the CI budget (>= 2,000 batches)
    ASYNCBATCH_FUZZ=long pytest tests/fuzz         # 50,000 batches, 15,000 streams
    ASYNCBATCH_FUZZ=long FUZZ_START=100000 pytest tests/fuzz   # other seeds
    FUZZ_SEED=1234 pytest tests/fuzz -k invariant -s   # replay one seed, scenario printed

A failure names its seeds, the first violations and the scenario.
"""
