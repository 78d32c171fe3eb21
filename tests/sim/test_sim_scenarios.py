"""Every named scenario runs as designed over real sockets, including the designed failures."""

from __future__ import annotations

import pytest

from vutrace.sim import SCENARIOS, ScenarioParams, run_scenario
from vutrace.sim.routing import ProxyThreads
from vutrace.sim.scenarios import ScenarioContext, get, run_frontend


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_runs_as_designed(name: str) -> None:
    result = run_scenario(name)
    assert result.ok, "\n".join(result.lines())
    assert not [c for c in result.checks if c.startswith("FAILED")]


@pytest.mark.parametrize("name", ["basic", "migrate"])
@pytest.mark.parametrize("reply_ack", [True, False])
def test_reply_ack_on_and_off(name: str, reply_ack: bool) -> None:
    result = run_scenario(name, get(name).params(reply_ack=reply_ack))
    assert result.ok, "\n".join(result.lines())
    need_reply = {r.request for r in result.transcript.rows() if r.flags == 0x9 and r.direction == "sent"}
    assert bool(need_reply) is reply_ack


@pytest.mark.parametrize("queue_pairs", range(1, 9))
def test_one_to_eight_queue_pairs(queue_pairs: int) -> None:
    params = ScenarioParams(queue_pairs=queue_pairs, requests=8 * queue_pairs)
    result = run_scenario("basic", params)
    assert result.ok, "\n".join(result.lines())
    kicks = [r for r in result.transcript.rows() if r.request == "SET_VRING_KICK"]
    assert len(kicks) == 2 * queue_pairs


def test_a_guest_with_more_queue_pairs_than_get_queue_num_allows_is_refused(backend) -> None:
    small = backend(queue_pairs=2)
    scenario = get("basic")
    ctx = ScenarioContext(scenario.params(queue_pairs=3), [small.path])
    result = run_frontend(scenario, ctx)
    assert not result.ok
    assert result.error == "GET_QUEUE_NUM: the back-end supports 2 queue pairs, the guest uses 3"


def test_a_scenario_runs_through_capturing_proxies(tmp_path) -> None:
    route = ProxyThreads(tmp_path)
    result = run_scenario("migrate-own-channel", route=route)
    assert result.ok, "\n".join(result.lines())
    assert sorted(p.name for p in route.captures) == ["destination.pcapng", "source.pcapng"]
    assert all(p.stat().st_size > 0 for p in route.captures)


def test_every_scenario_names_the_spec_and_the_backend_options_it_needs() -> None:
    for scenario in SCENARIOS.values():
        assert scenario.title and scenario.spec
        flags = scenario.backend_flags(scenario.params())
        assert len(flags) == len(scenario.sides)
    assert get("violation-reply-flags").backend_flags(ScenarioParams()) == [["--wrong-reply-flags", "GET_VRING_BASE"]]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"queue_pairs": 9}, "queue pairs 9: 1 to 8 are supported"),
        ({"ring_size": 3}, "ring size 3: a power of two from 2 to 32768"),
        ({"timeout": 0}, "the timeout > 0"),
    ],
)
def test_impossible_parameters_are_refused_up_front(given: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScenarioParams(**given)
