import numpy as np
import pytest

from bench import get_method, list_methods, register, select_methods
from bench.errors import UnknownName
from bench.registry import MethodFailed, check_scores, oriented


def test_builtin_methods_are_listed_and_filtered():
    names = list_methods()
    assert {"random", "loss", "confidence", "aum", "forgetting"} <= set(names)
    assert list_methods("fo*") == [n for n in names if n.startswith("fo")]
    assert "aum" not in list_methods("fo*")


def test_unknown_method_lists_close_matches_and_valid_names():
    with pytest.raises(UnknownName) as error:
        get_method("aumm")
    message = str(error.value)
    assert "Did you mean aum" in message and "forgetting" in message


def test_pattern_that_matches_nothing_is_an_error():
    with pytest.raises(UnknownName):
        select_methods("zzz*")


def test_register_defaults_name_and_rejects_unknown_needs():
    @register(higher_is_harder=False, needs=(), family="test")
    def _test_registered_method(ctx):
        """A test method."""
        return np.arange(len(ctx))

    method = get_method("_test_registered_method")
    assert method.summary == "A test method." and not method.higher_is_harder
    with pytest.raises(ValueError, match="unknown needs"):
        register(higher_is_harder=True, needs={"gpu"})


def test_scores_are_checked_and_oriented():
    method = get_method("aum")  # lower = harder
    with pytest.raises(MethodFailed, match="3 scores for 4"):
        check_scores(method, [1, 2, 3], 4)
    with pytest.raises(MethodFailed, match="non-finite"):
        check_scores(method, [1, np.nan, 3, 4], 4)
    with pytest.raises(MethodFailed, match="constant"):
        check_scores(method, [2, 2, 2, 2], 4)
    natural = check_scores(method, np.array([3.0, -1.0, 0.5, 2.0]), 4)
    assert np.argmax(oriented(method, natural)) == 1  # the smallest margin is the hardest
    assert np.array_equal(oriented(get_method("loss"), natural), natural)
