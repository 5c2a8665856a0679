"""The downloader under attack and under faults, against the local CDSE mimic (issue 14's matrix, downloader rows).

Every case runs the real command (``no2hotspots download --params FILE``, in-process) and checks: the exit status,
one line on stderr naming what failed, no password or token in that line or in the logs, and that every file outside
``download.out_dir`` and every good file already inside it is unchanged (sha256 of the whole tree before and after).
"""

from __future__ import annotations

import logging

import pytest

from .conftest import NAMES, make_cfg, other_host_mimic, payload, run_cli, tree
from .mimic import PASSWORD, Mimic


@pytest.fixture()
def site(tmp_path):
    """A work tree with a good granule already downloaded and files outside out_dir that must never change."""
    out = tmp_path / "data" / "tropomi"
    out.mkdir(parents=True)
    (out / NAMES[0]).write_bytes(payload(0))  # downloaded before: verified by checksum, never fetched again
    (tmp_path / "data" / "x.nc").write_bytes(b"parent of out_dir")
    (tmp_path / "x.nc").write_bytes(b"two levels up")
    (tmp_path / "abs").mkdir()
    (tmp_path / "abs" / "keep.txt").write_bytes(b"an absolute path's folder")
    return out


def _secrets_absent(mimic: Mimic, *texts: str) -> None:
    for text in texts:
        for secret in (PASSWORD, *mimic.issued, *(f"refresh-{k}" for k in range(1, 9))):
            assert secret not in text


def _one_error_line(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith("no2hotspots download: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert all(ch >= " " for ch in errors[0]), repr(errors[0])  # no control characters (terminal escapes)
    return errors[0]


def _downloads(mimic: Mimic, pid: str | None = None) -> list[dict]:
    return [r for r in mimic.requests if "$value" in r["path"] and (pid is None or f"({pid})" in r["path"])]


# -- hostile product names --------------------------------------------------------------------------------------------
HOSTILE_NAMES = {
    "dotdot-slash": "../x.nc",
    "deep-dotdot": "../../x.nc",
    "absolute": "{tmp}/abs/x.nc",
    "dotdot": "..",
    "dot": ".",
    "empty": "",
    "very-long": "S5P_" + "A" * 300 + ".nc",
    "nul": "x\x00.nc",
    "control-escape": "x\x1b[2J\r.nc",
    "newline": "x.nc\nFAKE LOG LINE",
    "subfolder": "sub/x.nc",
    "backslash": "..\\x.nc",
    "hidden": ".x.nc",
    "space-and-quote": "x '$(rm -rf ~)'.nc",
    "not-a-string": 12345,
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_hostile_name_refused_before_anything_is_written(mimic, tmp_path, creds, capsys, caplog, site, case):
    name = HOSTILE_NAMES[case]
    if isinstance(name, str):
        name = name.format(tmp=tmp_path)
    mimic.products["id-1"]["name"] = name
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2
    line = _one_error_line(lines)
    assert "catalogue product id-1" in line and "nothing downloaded" in line
    assert tree(tmp_path) == before
    assert _downloads(mimic) == []  # checked before the first byte
    _secrets_absent(mimic, line, caplog.text)


@pytest.mark.parametrize("pid", ["../../admin", "x)/$value?y=(", "", "a" * 200, "id 1"])
def test_hostile_product_id_refused(mimic, tmp_path, creds, capsys, site, pid):
    mimic.products[pid] = mimic.products.pop("id-2")
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "odd Id" in _one_error_line(lines)
    assert tree(tmp_path) == before and _downloads(mimic) == []


def test_duplicate_names_refused(mimic, tmp_path, creds, capsys, site):
    mimic.products["id-2"]["name"] = NAMES[1]
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "share the Name" in _one_error_line(lines)
    assert tree(tmp_path) == before


def test_next_link_to_another_host_not_followed(mimic, other, tmp_path, creds, capsys, site):
    mimic.next_link_base = other.url
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "@odata.nextLink leaves the catalogue" in _one_error_line(lines)
    assert other.requests == [] and tree(tmp_path) == before


def test_more_bytes_than_the_catalogue_says(mimic, tmp_path, creds, capsys, site):
    mimic.products["id-1"]["size"] = 1000
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "more than the catalogue's 1000 bytes" in _one_error_line(lines)
    after = tree(tmp_path)
    assert NAMES[1] not in {k.split("/")[-1] for k in after}
    assert {k: v for k, v in after.items() if not k.endswith(".part")} == before


# -- credentials and redirects ----------------------------------------------------------------------------------------
@pytest.fixture(params=["other-host", "other-port"])
def elsewhere(request):
    """A redirect target on another host (127.0.0.2) or on the same host at another port."""
    m = other_host_mimic() if request.param == "other-host" else Mimic()
    for i, name in enumerate(NAMES):
        m.add(f"id-{i}", name, payload(i))
    yield m
    m.close()


def test_redirect_to_another_origin_gets_no_token(mimic, elsewhere, tmp_path, creds, capsys, caplog, site):
    mimic.redirects["id-1"] = f"{elsewhere.url}/files/id-1"  # e.g. a presigned storage URL
    before = tree(tmp_path)
    with caplog.at_level(logging.INFO):
        code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 0, lines
    assert (site / NAMES[1]).read_bytes() == payload(1) and (site / NAMES[2]).read_bytes() == payload(2)
    got = elsewhere.requests
    assert [r["path"] for r in got] == ["/files/id-1"]
    assert "Authorization" not in got[0]["headers"]
    assert mimic.issued and all(not elsewhere.received(t) for t in mimic.issued)
    assert not elsewhere.received(PASSWORD)
    assert "the token is not sent there" in caplog.text
    assert {k: v for k, v in tree(tmp_path).items() if k in before} == before


def test_redirect_to_another_origin_that_wants_a_token_fails(mimic, elsewhere, tmp_path, creds, capsys, caplog, site):
    mimic.redirects["id-1"] = f"{elsewhere.url}/odata/v1/Products(id-1)/$value"
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "HTTP 401" in _one_error_line(lines)
    assert all("Authorization" not in r["headers"] for r in elsewhere.requests)
    assert all(not elsewhere.received(t) for t in mimic.issued)
    assert tree(tmp_path) == before
    _secrets_absent(mimic, *lines, caplog.text)


def test_token_endpoint_redirect_is_not_followed(mimic, other, tmp_path, creds, capsys, site):
    mimic.script["token"] = [("redirect", f"{other.url}/auth/token", 307)]
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "redirect not followed" in _one_error_line(lines)
    assert other.requests == [] and tree(tmp_path) == before


@pytest.mark.parametrize(
    "location,expect",
    [("file:///etc/passwd", "non-HTTP URL"), ("SELF", "more than 3 redirects")],
)
def test_bad_redirects(mimic, tmp_path, creds, capsys, site, location, expect):
    mimic.redirects["id-1"] = f"{mimic.url}/odata/v1/Products(id-1)/$value" if location == "SELF" else location
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path, max_redirects=3), tmp_path, capsys)
    assert code == 2 and expect in _one_error_line(lines)
    assert tree(tmp_path) == before


# -- retries, backoff, token refresh ----------------------------------------------------------------------------------
def test_429_with_retry_after_then_success(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.script["download:id-1"] = [("status", 429, {"Retry-After": "1"})]
    with caplog.at_level(logging.INFO):
        code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 0, lines
    assert "HTTP 429" in caplog.text and "retry 1/3 in 1.0 s (Retry-After)" in caplog.text
    assert (site / NAMES[1]).read_bytes() == payload(1)
    assert len(_downloads(mimic, "id-1")) == 2


def test_retry_after_is_capped(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.script["search"] = [("status", 503, {"Retry-After": "86400"})]
    with caplog.at_level(logging.INFO):
        code, _ = run_cli(make_cfg(mimic, tmp_path, max_backoff_s=0.05), tmp_path, capsys)
    assert code == 0 and "retry 1/3 in 0.1 s (Retry-After)" in caplog.text  # 0.05 s shown rounded


def test_503_twice_then_success_with_exponential_backoff(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.script["download:id-2"] = [("status", 503, {}), ("status", 503, {})]
    with caplog.at_level(logging.INFO):
        code, lines = run_cli(make_cfg(mimic, tmp_path, backoff_s=0.05), tmp_path, capsys)
    assert code == 0, lines
    assert "retry 1/3 in 0.1 s (backoff)" in caplog.text and "retry 2/3 in 0.1 s (backoff)" in caplog.text
    assert (site / NAMES[2]).read_bytes() == payload(2)
    assert len(_downloads(mimic, "id-2")) == 3


@pytest.mark.parametrize("kind", ["download:id-1", "search", "token"])
def test_500_forever_gives_up_with_one_line(mimic, tmp_path, creds, capsys, caplog, site, kind):
    mimic.script[kind] = [("status", 500, {})] * 10
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2
    line = _one_error_line(lines)
    assert "HTTP 500" in line and "gave up after 3 retries, download.retries" in line
    assert len(mimic.script[kind]) == 10 - 4  # 1 try + 3 retries
    assert tree(tmp_path) == before  # nothing half-written, no empty .part left
    _secrets_absent(mimic, line, caplog.text)


def test_401_on_download_then_refreshed_token(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.script["download:id-1"] = [("expire",)]
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 0, lines
    assert len(mimic.issued) == 2
    auths = [r["headers"].get("Authorization") for r in _downloads(mimic, "id-1")]
    assert auths == [f"Bearer {mimic.issued[0]}", f"Bearer {mimic.issued[1]}"]
    assert (site / NAMES[1]).read_bytes() == payload(1)
    _secrets_absent(mimic, *lines, caplog.text)


def test_401_again_after_refresh_is_one_line(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.script["download:id-1"] = [("expire",), ("expire",), ("expire",)]
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "HTTP 401 even with a fresh token" in _one_error_line(lines)
    assert len(mimic.issued) == 2  # refreshed once per request, not in a loop
    assert tree(tmp_path) == before
    _secrets_absent(mimic, *lines, caplog.text)


# -- integrity: checksums, cut connections, resume --------------------------------------------------------------------
def test_wrong_md5_one_line_no_file(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.products["id-1"]["md5"] = "0" * 32
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    line = _one_error_line(lines)
    assert code == 2 and NAMES[1] in line and "MD5" in line and "partial download was removed" in line
    assert tree(tmp_path) == before


def test_cut_connection_resumed_in_the_same_run(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.script["download:id-1"] = [("cut", 20_000)]
    with caplog.at_level(logging.INFO):
        code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 0, lines
    assert [r["headers"].get("Range") for r in _downloads(mimic, "id-1")] == [None, "bytes=20000-"]
    assert (site / NAMES[1]).read_bytes() == payload(1)
    assert "connection closed at byte 20000" in caplog.text or "connection dropped at byte 20000" in caplog.text


def test_cut_connection_resumed_by_the_next_run(mimic, tmp_path, creds, capsys, caplog, site):
    mimic.script["download:id-1"] = [("cut", 5_000)] * 4
    before = tree(tmp_path)
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 2 and "gave up after 3 retries" in _one_error_line(lines)
    after = tree(tmp_path)
    part = f"data/tropomi/.{NAMES[1]}.part"
    assert set(after) - set(before) == {part}  # only the hidden partial file; the target does not exist
    assert (site / f".{NAMES[1]}.part").read_bytes() == payload(1)[:20_000]
    assert {k: v for k, v in after.items() if k != part} == before
    mimic.requests.clear()
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 0, lines
    assert [r["headers"].get("Range") for r in _downloads(mimic, "id-1")] == ["bytes=20000-"]
    assert (site / NAMES[1]).read_bytes() == payload(1)
    assert not (site / f".{NAMES[1]}.part").exists()


def test_corrupt_existing_file_is_replaced_atomically(mimic, tmp_path, creds, capsys, site):
    (site / NAMES[2]).write_bytes(b"truncated")
    code, lines = run_cli(make_cfg(mimic, tmp_path), tmp_path, capsys)
    assert code == 0, lines
    assert (site / NAMES[2]).read_bytes() == payload(2)
    assert _downloads(mimic, "id-0") == []  # the good one was kept
