"""The rebuild form's cross-site checks: its token and the same-origin rule; and the
pages' query parameters, which refuse malformed input instead of failing on it."""

from __future__ import annotations

import pytest

from alamode_airflow.view.guard import TOKEN_SECONDS, make_token, same_origin, token_ok
from alamode_airflow.view.queries import BadQuery, generation, map_index

NOW = 1_800_000_000.0


def test_a_token_is_good_for_its_user_and_dag_for_an_hour():
    token = make_token("alice", "collage", now=NOW)
    assert token_ok(token, "alice", "collage", now=NOW + TOKEN_SECONDS)
    assert not token_ok(token, "bob", "collage", now=NOW)
    assert not token_ok(token, "alice", "other", now=NOW)
    assert not token_ok(token, "alice", "collage", now=NOW + TOKEN_SECONDS + 1)
    assert not token_ok(token, "alice", "collage", now=NOW - 10)  # from the future


def test_a_forged_or_missing_token_is_refused():
    issued = str(int(NOW))
    for token in ("", "x", f"{issued}.", f"{issued}.{'0' * 64}", f"{issued}1.{'0' * 64}"):
        assert not token_ok(token, "alice", "collage", now=NOW), token
    good = make_token("alice", "collage", now=NOW)
    tampered = f"{int(NOW) + 1}.{good.split('.')[1]}"  # a later time under the old MAC
    assert not token_ok(tampered, "alice", "collage", now=NOW + 1)


def test_only_this_servers_pages_may_post():
    own = ["http://airflow.example:8080/", "https://airflow.example/base"]
    assert same_origin({"origin": "http://airflow.example:8080"}, own)
    assert same_origin({"origin": "https://AIRFLOW.example"}, own)
    assert not same_origin({"origin": "http://evil.example"}, own)
    assert not same_origin({"origin": "null"}, own)  # a sandboxed frame of another origin
    assert not same_origin({"sec-fetch-site": "cross-site"}, own)
    assert not same_origin({"sec-fetch-site": "same-site"}, own)
    assert same_origin({"sec-fetch-site": "same-origin"}, own)
    assert same_origin({}, own)  # a script with a token: no page involved


def test_a_malformed_token_is_refused_not_an_error():
    good = make_token("alice", "collage", now=NOW)
    issued, mac = good.split(".")
    for token in ("²00.x", f"{issued}.{mac[:-1]}é", f"\u0661{issued[1:]}.{mac}", "-1." + mac):
        assert not token_ok(token, "alice", "collage", now=NOW), token


def test_malformed_query_parameters_are_bad_queries():
    assert [map_index(v) for v in (None, "", "{MAP_INDEX}", "-1", "0", "12")] == [
        -1,
        -1,
        -1,
        -1,
        0,
        12,
    ]
    assert [generation(v) for v in (None, "", "0", "3")] == [None, None, 0, 3]
    for value in ("--1", "²", "1.5", "abc", "-2", "9" * 40):
        with pytest.raises(BadQuery, match="map_index"):
            map_index(value)
    for value in ("abc", "-1", "²", " 1"):
        with pytest.raises(BadQuery, match="generation"):
            generation(value)
