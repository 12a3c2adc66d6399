"""The rebuild form's cross-site checks: its token and the same-origin rule."""

from __future__ import annotations

from alamode_airflow.view.guard import TOKEN_SECONDS, make_token, same_origin, token_ok

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
