import pytest


@pytest.fixture(autouse=True)
def _only_when_benchmarking(request):
    """Speed checks assert ratios measured on a quiet machine: they run with
    ``--benchmark-enable`` and are skipped (not silently passed) in the normal suite,
    whose configuration passes ``--benchmark-disable``."""
    config = request.config
    if config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"):
        pytest.skip("speed benchmark: run with `python -m pytest tests/benchmarks --benchmark-enable`")
