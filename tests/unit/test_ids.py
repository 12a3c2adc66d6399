"""The ID rules, pinned: the same preimage gives the same ID on every engine."""

from __future__ import annotations

from a_la_mode.ids import file_digest, id_of, is_output_id, output_id


def test_known_ids_are_pinned():
    assert id_of(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert output_id({"command": "true"}, {}) == id_of(b"d7:command4:true6:inputsdee")
    digest = file_digest({"dag_id": "x", "alamode_digest": "ignored"}, {"t": "ab" * 32})
    # bencode({"meta": meta without the digest, "outputs": ...}), written out by hand.
    payload = b"d4:metad6:dag_id1:xe7:outputsd1:t64:" + b"ab" * 32 + b"ee"
    assert digest == id_of(payload)
    assert digest == "44660d0e3d173ec5c82b3ff2b57d661f3c5e77ae17b624775f247535ac5fd2c0"


def test_only_64_lower_case_hex_digits_are_output_ids():
    assert is_output_id("0" * 64)
    for bad in ("0" * 63, "0" * 65, "A" * 64, "../" + "0" * 61, 64, None):
        assert not is_output_id(bad)
