"""Shrinking against a fake runner: which decision sets fail is scripted."""

from armvisor.explore.runner import Outcome
from armvisor.explore.shrink import shrink
from armvisor.machine.schedule import Decision


def scripted(fails, log=None, failing_status="failed"):
    """try_runs for a 'machine' that fails when fails(decisions) holds."""
    def try_runs(candidates):
        if log is not None:
            log.append(len(candidates))
        return [Outcome(0, failing_status if fails(c) else "passed", decisions=tuple(c))
                for c in candidates]
    return try_runs


def slices(n, value=10):
    return [Decision("slice", i, value) for i in range(n)]


def test_drops_everything_but_the_decisions_that_matter():
    needed = {3, 41}
    result = shrink(slices(60), scripted(lambda c: needed <= {d.index for d in c}),
                    defaults={})
    assert {d.index for d in result.decisions} == needed
    assert result.outcome is not None and result.runs < 60


def test_moves_values_toward_the_default_while_it_still_fails():
    # Fails while slice 5 is at most 300 instructions (default 50 000).
    def fails(c):
        return any(d.index == 5 and d.value <= 300 for d in c)
    result = shrink([Decision("slice", 5, 10), Decision("kick", 0, 40_000)], scripted(fails),
                    defaults={"slice": 50_000, "kick": 0})
    assert [d.kind for d in result.decisions] == ["slice"]
    assert 150 < result.decisions[0].value <= 300


def test_kinds_without_a_default_are_only_dropped():
    order = Decision("order", 0, [1, 0])
    result = shrink([order], scripted(lambda c: bool(c)), defaults={"slice": 50_000})
    assert result.decisions == (order,) and result.runs == 1


def test_respects_the_run_budget():
    log = []
    result = shrink(slices(100), scripted(lambda c: len(c) > 50, log), defaults={}, max_runs=7)
    assert result.runs <= 7 and sum(log) <= 7
    assert 50 < len(result.decisions) < 100


def test_another_failure_is_not_the_one_being_shrunk():
    def try_runs(candidates):
        return [Outcome(0, "failed", decisions=tuple(c), predicate=0 if len(c) == 4 else 1)
                for c in candidates]
    result = shrink(slices(4), try_runs, defaults={},
                    same_failure=lambda o: o.failed and o.predicate == 0)
    assert len(result.decisions) == 4 and result.outcome is None


def test_batches_take_the_first_failing_candidate():
    log = []
    result = shrink(slices(8), scripted(lambda c: any(d.index == 6 for d in c), log),
                    defaults={}, batch=4)
    assert [d.index for d in result.decisions] == [6]
    assert max(log) <= 4


def test_keeps_what_the_failing_run_actually_took():
    # A run reports only the decisions it used: the shrunk schedule is that.
    def try_runs(candidates):
        return [Outcome(0, "failed", decisions=tuple(d for d in c if d.index != 2))
                for c in candidates]
    result = shrink(slices(3), try_runs, defaults={})
    assert all(d.index != 2 for d in result.decisions)
