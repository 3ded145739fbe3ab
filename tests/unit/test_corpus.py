"""Replay every request in tests/corpus/requests through h1 in several chunkings."""

from __future__ import annotations

import os

import pytest

from tests.harness.h1_replay import CHUNKINGS, replay

CORPUS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "requests")
MAX_BODY = 1024  # small, so 047/048 hit 413 without megabytes of corpus

# name -> requests answered, as (method, target, body, client keep-alive)
VALID: dict[str, list[tuple[bytes, bytes, bytes, bool]]] = {
    "001_get": [(b"GET", b"/", b"", True)],
    "002_get_http10": [(b"GET", b"/x?y=1", b"", False)],
    "003_post_cl": [(b"POST", b"/p", b"hello", True)],
    "004_chunked": [(b"POST", b"/c", b"abcdefg", True)],
    "005_chunked_ext_trailer": [(b"POST", b"/c", b"abcdefg", True)],
    "006_pipelined_three": [
        (b"GET", b"/1", b"", True),
        (b"GET", b"/2", b"", True),
        (b"GET", b"/3", b"", True),
    ],
    "007_pipelined_get_post": [
        (b"GET", b"/1", b"", True),
        (b"POST", b"/2", b"hi", True),
    ],
    "008_cl_leading_zeros": [(b"POST", b"/", b"0123456789", True)],
    "009_absolute_form": [(b"GET", b"http://ex.com/p?q=1", b"", True)],
    "010_options_star": [(b"OPTIONS", b"*", b"", True)],
    "011_propfind": [(b"PROPFIND", b"/", b"", True)],
    # after "Connection: close" the rest is discarded, never parsed
    "012_close_then_junk": [(b"GET", b"/", b"", False)],
    "013_http10_keepalive": [(b"GET", b"/1", b"", True), (b"GET", b"/2", b"", False)],
    # served as plain HTTP, then closed; the bytes after the head are not a request
    "014_upgrade": [(b"GET", b"/ws", b"", False)],
    "015_leading_crlf": [(b"GET", b"/", b"", True)],
    "016_underscore_and_proxy": [(b"GET", b"/", b"", True)],
    "017_te_empty_elements": [(b"POST", b"/", b"z", True)],
    "018_expect_100": [(b"POST", b"/", b"hi", True)],
    "019_connection_close_te": [(b"GET", b"/", b"", False)],
    "020_cl_trailing_ows": [(b"POST", b"/", b"abc", True)],
    "021_upgrade_post_cl": [(b"POST", b"/u", b"abc", False)],
    "022_http10_expect": [(b"POST", b"/", b"hi", False)],
    # Methods llhttp does not know go to the app (they used to get 501).
    "023_unknown_method": [(b"FOO", b"/", b"", True)],
    "024_unknown_methods_pipelined_cl": [
        (b"PURGEX", b"/x", b"abc", True),
        (b"-BLARGH", b"/", b"", True),
    ],
}

# name -> error status (requests answered before the bad one, if any)
INVALID: dict[str, tuple[int, list[tuple[bytes, bytes, bytes, bool]]]] = {
    "001_no_host": (400, []),
    "002_two_hosts": (400, []),
    "003_cl_and_te": (400, []),
    "004_te_and_cl": (400, []),
    "005_two_cl_equal": (400, []),
    "006_cl_list": (400, []),
    "007_cl_plus": (400, []),
    "008_cl_minus": (400, []),
    "009_cl_3x": (400, []),
    "010_cl_hex": (400, []),
    "011_cl_underscore": (400, []),
    "012_cl_empty": (400, []),
    "013_te_gzip_chunked": (501, []),
    "014_te_identity": (501, []),
    "015_te_chunked_gzip": (501, []),
    "016_te_xchunked": (501, []),
    # The same list on two lines as "chunked, chunked" on one: 501 (it was 400).
    "017_two_te": (501, []),
    "018_te_http10": (400, []),
    "019_obs_fold": (400, []),
    "020_bare_lf": (400, []),
    "021_bare_cr": (400, []),
    "022_nul_value": (400, []),
    "023_bel_value": (400, []),
    "024_del_value": (400, []),
    "025_space_before_colon": (400, []),
    "026_tab_first_field": (400, []),
    "027_long_request_line": (414, []),
    "028_too_many_fields": (431, []),
    "029_field_too_long": (431, []),
    "030_head_1mib": (431, []),
    "031_chunk_overflow": (400, []),
    "032_chunk_0x": (400, []),
    "033_chunk_plus": (400, []),
    "034_chunk_underscore": (400, []),
    "035_chunk_no_crlf": (400, []),
    "036_chunk_cr_cr": (400, []),
    "037_http20": (505, []),
    "038_http12": (400, []),
    "039_http09": (400, []),
    "040_lowercase_method": (400, []),
    "042_tls_client_hello": (400, []),
    "043_connect": (501, []),
    "044_star_with_get": (400, []),
    "045_relative_target": (400, []),
    "046_expect_foo": (417, []),
    "047_body_too_large": (413, []),
    "048_chunked_too_large": (413, []),
    "049_bad_host": (400, []),
    "050_pipelined_then_bad": (400, [(b"GET", b"/1", b"", True)]),
    "051_upgrade_chunked": (400, []),
    "052_space_in_name": (400, []),
    "053_nbsp_in_name": (400, []),
    "054_authority_form_get": (400, []),
    "055_userinfo_target": (400, []),
    "056_two_content_types": (400, []),
    "057_te_gzip_then_chunked_lines": (501, []),
}


def _load(kind: str, name: str) -> bytes:
    with open(os.path.join(CORPUS, kind, name + ".http"), "rb") as f:
        return f.read()


def test_corpus_tables_cover_every_file() -> None:
    for kind, table in (("valid", VALID), ("invalid", INVALID)):
        files = {
            n[:-5]
            for n in os.listdir(os.path.join(CORPUS, kind))
            if n.endswith(".http")
        }
        assert files == set(table), kind


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize("name", sorted(VALID))
def test_corpus_valid_request_parses(name: str, how: str) -> None:
    seen, error = replay(_load("valid", name), how, max_body=MAX_BODY)
    assert error is None
    assert seen == VALID[name]


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize("name", sorted(INVALID))
def test_corpus_invalid_request_gets_status(name: str, how: str) -> None:
    status, before = INVALID[name]
    seen, error = replay(_load("invalid", name), how, max_body=MAX_BODY)
    assert (seen, error) == (before, status)
