"""`tierline simulate --set`: any profile field from the command line, checked."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tierline.processors.simulator import SimulatorProfile
from tierline.streams.cli.simulate import command, set_fields

KNOWN = frozenset(SimulatorProfile.model_fields)


def test_values_are_read_as_json_and_reach_the_profile() -> None:
    changes = set_fields(
        ("batch_delay_s=5", "stream_cut_rate=0.25", "tools=false", "output_tokens=[4, 8]"), KNOWN
    )
    assert changes == {
        "batch_delay_s": 5,
        "stream_cut_rate": 0.25,
        "tools": False,
        "output_tokens": [4, 8],
    }
    profile = SimulatorProfile().with_overrides(**changes)
    assert (profile.batch_delay_s, profile.stream_cut_rate, profile.tools) == (5.0, 0.25, False)
    assert profile.output_tokens == (4, 8)


@pytest.mark.parametrize(
    ("pair", "said"),
    [
        ("batch_delay=5", "no profile field 'batch_delay'; the fields: "),
        ("batch_delay_s", "is not FIELD=VALUE"),
        ("=3", "is not FIELD=VALUE"),
    ],
)
def test_a_pair_that_names_no_field_is_refused_with_the_fields(pair: str, said: str) -> None:
    with pytest.raises(click.BadParameter, match=said):
        set_fields((pair,), KNOWN)


def test_the_command_refuses_a_bad_value_before_it_listens() -> None:
    result = CliRunner().invoke(command, ["--port", "0", "--set", "batch_expire_rate=2"])
    assert result.exit_code == 2
    assert "batch_expire_rate" in result.output
    assert "Provider simulator serving" not in result.output
