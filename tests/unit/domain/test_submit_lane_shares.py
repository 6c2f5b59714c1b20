"""Submit lanes (inbetween.domain.submit_lanes): one per API key, sharing the account's creates a second
in whole creates, never more than it allows."""

from __future__ import annotations

import pytest
from inbetween.domain.submit_lanes import SubmitLane, submit_lanes


@pytest.mark.parametrize(
    ("keys", "rate", "shares"),
    [
        (1, 5.0, None),  # one key: the account's lane, all of the rate
        (2, 5.0, [3.0, 2.0]),
        (3, 5.0, [2.0, 2.0, 1.0]),
        (7, 5.0, [1.0] * 5),  # a key beyond the rate's whole creates would get no share: no lane
        (3, 2.0, [1.0, 1.0]),  # kf2v: 2 a second
        (2, 1.0, None),  # 1 a second (kf2v-plus in Singapore): nothing to share
    ],
)
def test_the_lanes_share_the_accounts_creates_a_second_in_whole_creates(keys, rate, shares):
    refs = tuple(f"ref{i}" for i in range(keys))
    lanes = submit_lanes(refs, rate)
    if shares is None:
        assert lanes == (SubmitLane(None, rate),)
        assert lanes[0].name == ""  # the account's lease item, as with one key always
    else:
        assert [lane.rate_per_s for lane in lanes] == shares
        assert sum(lane.rate_per_s for lane in lanes) <= rate
        assert [lane.key_ref for lane in lanes] == list(refs[: len(shares)])
        assert [lane.name for lane in lanes] == list(refs[: len(shares)])


def test_the_lanes_take_their_places_in_the_keys_order():
    lanes = submit_lanes(("a", "b", "c"), 5.0)
    assert [lane.position for lane in lanes] == [0, 1, 2]
