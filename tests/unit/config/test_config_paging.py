"""Page sizes and page tokens of the config service's lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.config.domain import paging


@pytest.mark.parametrize(("requested", "expected"), [(0, 50), (1, 1), (50, 50), (1000, 1000), (5000, 1000)])
def test_page_size_is_clamped(requested: int, expected: int) -> None:
    assert paging.page_size(requested) == expected


def test_negative_page_size_is_refused() -> None:
    with pytest.raises(ValueError):
        paging.page_size(-1)


@given(st.text(max_size=30), st.one_of(st.integers(), st.text(max_size=30)))
def test_token_round_trips_within_its_scope(scope: str, position: int | str) -> None:
    token = paging.encode_token(scope, position)
    assert paging.decode_token(token, scope) == position
    with pytest.raises(paging.BadPageToken):
        paging.decode_token(token, scope + "x")


@pytest.mark.parametrize("token", ["junk", "!!!", "e30", "bnVsbA", "W10"])
def test_foreign_tokens_are_refused(token: str) -> None:
    with pytest.raises(paging.BadPageToken):
        paging.decode_token(token, "versions:tenants/a/agents/b")
