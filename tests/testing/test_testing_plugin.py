"""asyncbatch's pytest plugin: registered through its entry point, its fixtures work under
pytest-asyncio and under anyio's plugin (asyncio and trio, MockClock included)."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points
from typing import Any, Callable

import anyio
import pytest
import trio.testing

import asyncbatch
from asyncbatch.testing import LambdaContext, simulate
from asyncbatch.testing import sqs_event as sqs_event_factory

pytest_plugins = ["pytester"]


def test_the_plugin_is_registered_and_loaded(pytestconfig: pytest.Config) -> None:
    (point,) = [e for e in entry_points(group="pytest11") if e.name == "asyncbatch"]
    assert point.value == "asyncbatch.testing.pytest_plugin"
    assert pytestconfig.pluginmanager.has_plugin("asyncbatch")


def test_the_event_fixtures_are_the_factories(
    sqs_event: Callable[..., Any], kinesis_event: Callable[..., Any],
    dynamodb_event: Callable[..., Any], kafka_event: Callable[..., Any],
    s3_event: Callable[..., Any],
) -> None:
    import asyncbatch.testing as testing

    assert sqs_event is testing.sqs_event
    assert kinesis_event is testing.kinesis_event
    assert dynamodb_event is testing.dynamodb_event
    assert kafka_event is testing.kafka_event
    assert s3_event is testing.s3_event


def test_the_other_shapes_fixtures_are_the_factories(
    firehose_event: Callable[..., Any], pipes_event: Callable[..., Any],
    sns_sqs_event: Callable[..., Any], eventbridge_sqs_event: Callable[..., Any],
) -> None:
    import asyncbatch.testing as testing

    assert firehose_event is testing.firehose_event
    assert pipes_event is testing.pipes_event
    assert sns_sqs_event is testing.sns_sqs_event
    assert eventbridge_sqs_event is testing.eventbridge_sqs_event


def test_lambda_context_is_a_fresh_context(lambda_context: LambdaContext) -> None:
    assert isinstance(lambda_context, LambdaContext)
    assert 0 < lambda_context.get_remaining_time_in_millis() <= 900_000


@pytest.mark.lambda_context(remaining=2.5, function_name="orders")
def test_the_marker_sets_the_contexts_arguments(lambda_context: LambdaContext) -> None:
    assert lambda_context.function_name == "orders"
    assert 0 < lambda_context.get_remaining_time_in_millis() <= 2500


# -- under pytest-asyncio ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_under_pytest_asyncio(lambda_context: LambdaContext,
                                    sqs_event: Callable[..., Any]) -> None:
    assert asyncio.get_running_loop()
    seen: list[str] = []

    async def handle(record: asyncbatch.SQSRecord, context: Any) -> None:
        seen.append(context.function_name)

    result = await simulate(handle, sqs_event("a", "b"), context=lambda_context)
    assert seen == ["test-function"] * 2 and len(result.invocations) == 1
    assert 0 < lambda_context.get_remaining_time_in_millis() <= 900_000


# -- under anyio's plugin ----------------------------------------------------------------


@pytest.mark.anyio
async def test_under_anyio(anyio_backend: str, lambda_context: LambdaContext,
                           kinesis_event: Callable[..., Any]) -> None:
    assert anyio.get_current_task()
    event = kinesis_event(("k", {"n": 1}), ("k", {"n": 2}))

    async def handle(record: asyncbatch.KinesisRecord) -> None:
        pass

    result = await simulate(handle, event, context=lambda_context)
    assert list(result.deliveries.values()) == [1, 1]


class TestUnderTrioMockClock:
    """anyio's plugin on trio with a MockClock: the fixture's context runs on virtual time."""

    @pytest.fixture
    def anyio_backend(self) -> Any:
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})

    @pytest.mark.anyio
    @pytest.mark.lambda_context(remaining=30.0)
    async def test_the_context_counts_down_on_virtual_time(
        self, lambda_context: LambdaContext,
    ) -> None:
        first = lambda_context.get_remaining_time_in_millis()
        await anyio.sleep(20)
        assert first - lambda_context.get_remaining_time_in_millis() in (20000, 20001)
        await anyio.sleep(20)
        assert lambda_context.get_remaining_time_in_millis() == 0

    @pytest.mark.anyio
    @pytest.mark.lambda_context(remaining=10.0)
    async def test_the_processor_meets_the_fixtures_deadline(
        self, lambda_context: LambdaContext,
    ) -> None:
        async def handle(record: Any) -> None:
            await anyio.sleep(3600)

        start = anyio.current_time()
        report = await asyncbatch.AsyncBatchProcessor().process(
            sqs_event_factory("a"), handle, lambda_context)
        # auto cancel margin on ~10 s: 5% = 0.5 s
        assert 9.0 < anyio.current_time() - start < 10.0
        assert isinstance(report.failed[0].exception, asyncbatch.DeadlineExceededError)


# -- in a user's project ------------------------------------------------------------------


def test_a_users_project_gets_the_fixtures_without_a_conftest(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_handler="""
        import anyio
        import pytest

        from asyncbatch.testing import simulate


        async def handle(record):
            pass


        @pytest.mark.asyncio
        async def test_with_pytest_asyncio(lambda_context, sqs_event):
            result = await simulate(handle, sqs_event("a"), context=lambda_context)
            assert list(result.deliveries.values()) == [1]


        @pytest.mark.anyio
        @pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
        async def test_with_anyio(anyio_backend, lambda_context, kafka_event):
            result = await simulate(handle, kafka_event(("k", "v")), context=lambda_context)
            assert list(result.deliveries) == [("orders-0", 0)]


        @pytest.mark.lambda_context(remaining=1.0)
        def test_sync(lambda_context):
            assert lambda_context.get_remaining_time_in_millis() <= 1000
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers",
                                "-W", "error::pytest.PytestDeprecationWarning",
                                "-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=4)
