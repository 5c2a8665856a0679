"""Drive cdsetool or eodag through the downloader's hostile cases against the local CDSE mimic, and say which pass.

This is the measurement behind the library choice in docs/download.md, not a test (pytest does not collect it). Run
it in a throw-away virtualenv that has the library, never in the project's:

    python -m venv /tmp/v-cds && /tmp/v-cds/bin/pip install cdsetool==0.3.3
    /tmp/v-cds/bin/python tests/download/probe_libraries.py cdsetool [--json out.json]
    python -m venv /tmp/v-eodag && /tmp/v-eodag/bin/pip install eodag==4.10.1
    /tmp/v-eodag/bin/python tests/download/probe_libraries.py eodag [--json out.json]
    .venv/bin/python tests/download/probe_libraries.py ours          # the project's client, same cases

Each case starts a fresh mimic (127.0.0.1) and a second server on another host (127.0.0.2), signs RS256 JWT access
tokens (both libraries verify them against the JWKS), asks the library to download one product into an empty
``out`` folder beside files that must not change, and records what the library did: files written (and where),
requests each server received (with which credentials), waits the library asked for (``time.sleep`` is recorded,
not slept), the exception or return value, and whether a secret reached the logs (captured at DEBUG).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mimic import PASSWORD, USER, Mimic, s5p_name  # noqa: E402

REAL_SLEEP = time.sleep
BASE = tempfile.mkdtemp(prefix="probe-libraries-")
SLEEPS: list[float] = []


def _fake_sleep(s):
    SLEEPS.append(float(s))
    REAL_SLEEP(min(float(s), 0.01))


def payload(i: int) -> bytes:
    return hashlib.sha256(f"p{i}".encode()).digest() * (1500 + 10 * i)  # 48-49 kB


# -- signed tokens (cdsetool and eodag verify the JWT signature and expiry) -------------------------------------------
def jwt_signer():
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    jwks = {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": b64(pub.n), "e": b64(pub.e)}]}

    def factory(k: int) -> str:
        now = int(time.time())
        claims = {"exp": now + 600, "iat": now, "sub": "alice", "aud": ["CLOUDFERRO_PUBLIC"], "jti": f"j{k}"}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})

    return factory, jwks


# -- the libraries ----------------------------------------------------------------------------------------------------
def download_cdsetool(m: Mimic, pid: str, out: Path, attempts: int):
    import cdsetool.download as dl
    from cdsetool.credentials import Credentials

    # cdsetool 0.3.3 hard-codes https://download.dataspace.copernicus.eu (and the catalogue host in query.py):
    # the only way to point it at another server is to replace a private function.
    dl._get_feature_url = lambda f: f"{m.url}/odata/v1/Products({f['Id']})/$value"
    creds = Credentials(USER, PASSWORD, openid_configuration_endpoint=f"{m.url}/auth/.well-known/openid-configuration")
    feature = m.item(pid, m.products[pid])
    opts = {"credentials": creds, "download_attempts": attempts, "logger": logging.getLogger("cdsetool")}
    return dl.download_feature(feature, str(out), opts)


def download_eodag(m: Mimic, pid: str, out: Path, attempts: int):
    work = Path(tempfile.mkdtemp(prefix="eodag-home-", dir=out.parents[2]))  # outside the watched tree

    empty = work / "ext.json"
    empty.write_text("{}")
    os.environ["EODAG_EXT_COLLECTIONS_CFG_URI"] = str(empty)  # no fetch of the online collection list
    os.environ["EODAG_CFG_DIR"] = str(work)
    conf = work / "eodag.yml"
    conf.write_text(
        json.dumps(
            {
                "cop_dataspace": {
                    "priority": 10,
                    "search": {
                        "api_endpoint": f"{m.url}/odata/v1/Products",
                        "metadata_mapping": {"eodag:download_link": f"{m.url}/odata/v1/Products({{uid}})/$value"},
                    },
                    "download": {"output_dir": str(out), "extract": False},
                    "auth": {
                        "matching_url": m.url,
                        "oidc_config_url": f"{m.url}/auth/.well-known/openid-configuration",
                        "credentials": {"username": USER, "password": PASSWORD},
                    },
                }
            }
        )
    )
    from eodag import EODataAccessGateway
    from eodag.api.core import EODAGSettings

    dag = EODataAccessGateway(settings=EODAGSettings(cfg_file=conf))
    results = dag.search(
        collection="S5P_L2_NO2",
        provider="cop_dataspace",
        start="2021-07-25",
        end="2021-07-26",
        geom=[26.5, -25.0, 29.5, -22.5],
    )
    product = next(p for p in results if p.properties.get("uid") == pid)
    return product.download(output_dir=str(out), wait=0.001, timeout=0.01, extract=False)


def download_ours(m: Mimic, pid: str, out: Path, attempts: int):
    from omegaconf import OmegaConf

    from no2hotspots.download.cdse import CDSEClient

    cfg = OmegaConf.create(
        {
            "catalogue_url": f"{m.url}/odata/v1",
            "download_url": f"{m.url}/odata/v1",
            "token_url": f"{m.url}/auth/token",
            "client_id": "cdse-public",
            "netrc_file": None,
            "collection": "SENTINEL-5P",
            "product_type": "L2__NO2___",
            "timeliness": [],
            "bbox": [26.5, -25.0, 29.5, -22.5],
            "start": "2021-07-25T00:00:00Z",
            "end": "2021-07-26T00:00:00Z",
            "page_size": 10,
            "max_products": 10,
            "timeout_s": 10,
            "chunk_bytes": 1 << 16,
            "retries": attempts - 1,
            "backoff_s": 1.0,
            "max_backoff_s": 60,
            "max_redirects": 5,
        }
    )
    os.environ["CDSE_USERNAME"], os.environ["CDSE_PASSWORD"] = USER, PASSWORD
    client = CDSEClient(cfg)
    product = next(p for p in client.search() if p.id == pid)
    return client.download(product, out)


LIBS = {"cdsetool": download_cdsetool, "eodag": download_eodag, "ours": download_ours}


# -- the cases --------------------------------------------------------------------------------------------------------
def case_plain(m, o, tmp):
    return "id-1", "downloads the product to a plain file in out_dir"


def case_name_dotdot(m, o, tmp):
    m.products["id-1"]["name"] = "../x.nc"
    return "id-1", "Name '../x.nc': nothing written outside out_dir"


def case_name_absolute(m, o, tmp):
    m.products["id-1"]["name"] = f"{tmp}/abs/x.nc"
    return "id-1", "Name '/abs/x.nc' (absolute): nothing written outside out_dir"


def case_name_dots(m, o, tmp):
    m.products["id-1"]["name"] = ".."
    return "id-1", "Name '..': nothing written outside out_dir"


def case_name_control(m, o, tmp):
    m.products["id-1"]["name"] = "x\x1b[2J\n.nc"
    return "id-1", "Name with control characters: refused or cleaned"


def case_redirect(m, o, tmp):
    m.redirects["id-1"] = f"{o.url}/files/id-1"
    return "id-1", "redirect to another host: the token does not arrive there"


def case_429(m, o, tmp):
    m.script["download:id-1"] = [("status", 429, {"Retry-After": "7"})]
    return "id-1", "429 + Retry-After: 7, then success: retried after 7 s"


def case_503_twice(m, o, tmp):
    m.script["download:id-1"] = [("status", 503, {}), ("status", 503, {})]
    return "id-1", "503 twice, then success: retried with growing waits"


def case_500_forever(m, o, tmp):
    m.script["download:id-1"] = [("status", 500, {})] * 200
    return "id-1", "500 forever: bounded retries, then an exception with a one-line message, no file"


def case_401_refresh(m, o, tmp):
    m.script["download:id-1"] = [("expire",)]
    return "id-1", "401 on download (token revoked), then a new token succeeds"


def case_bad_md5(m, o, tmp):
    m.products["id-1"]["md5"] = "0" * 32
    return "id-1", "wrong catalogue MD5: an error, no file left"


def case_cut(m, o, tmp):
    m.script["download:id-1"] = [("cut", 20_000)]
    return "id-1", "connection cut at 20 kB: resumed with Range, file complete"


CASES = [
    case_plain,
    case_name_dotdot,
    case_name_absolute,
    case_name_dots,
    case_name_control,
    case_redirect,
    case_429,
    case_503_twice,
    case_500_forever,
    case_401_refresh,
    case_bad_md5,
    case_cut,
]


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    out = {}
    for dirpath, _d, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if skip in p.parents:
                continue
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(lib: str, case, signer) -> dict:
    factory, jwks = signer
    m, o = Mimic(), Mimic(host="127.0.0.2")
    for x in (m, o):
        x.token_factory, x.jwks = factory, jwks
        for i in range(3):
            x.add(f"id-{i}", s5p_name(i), payload(i))
    tmp = Path(tempfile.mkdtemp(prefix=f"probe-{lib}-", dir=BASE)) / "tree"
    tmp.mkdir()
    out = tmp / "out" / "tropomi"
    out.mkdir(parents=True)
    (tmp / "out" / "keep.nc").write_bytes(b"outside out_dir")
    # sentinels where an escaping name would land (also transiently: a library may write there, then move away)
    systmp = tmp / "t" / "sys"
    systmp.mkdir(parents=True)
    tempfile.tempdir = str(systmp)  # the libraries' temporary folders go here, inside the watched tree
    for d in (tmp / "abs", tmp / "t", systmp):
        d.mkdir(exist_ok=True)
        for f in ("x.nc", "x.nc.zip", "x", "x.zip"):
            (d / f).write_bytes(b"sentinel " + f.encode())
    pid, what = case(m, o, tmp)
    outside_before = snapshot(tmp, out)
    logbuf = io.StringIO()
    handler = logging.StreamHandler(logbuf)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    SLEEPS.clear()
    result, error, t0 = None, None, time.monotonic()
    try:
        result = LIBS[lib](m, pid, out, attempts=4)
    except BaseException as e:  # noqa: BLE001 - any outcome is a finding
        error = e
    wall = time.monotonic() - t0
    root.removeHandler(handler)
    logs = logbuf.getvalue()
    secrets = [PASSWORD, *m.issued]
    tempfile.tempdir = None
    outside_after = snapshot(tmp, out)
    inside = {str(p.relative_to(out)): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    downloads = [r for r in m.requests if "$value" in r["path"] and r["method"] == "GET"]
    data = m.products[pid]["data"]
    complete = [k for k, size in inside.items() if size == len(data) and (out / k).read_bytes() == data]
    err_text = f"{type(error).__name__}: {error}" if error is not None else ""
    rec = {
        "case": case.__name__[5:],
        "expect": what,
        "result": repr(result)[:200],
        "error": err_text[:400],
        "error_lines": len(str(error).splitlines()) if error is not None else 0,
        "outside_changed": sorted(set(outside_after.items()) ^ set(outside_before.items())),
        "files_in_out_dir": inside,
        "complete_file": complete,
        "download_requests": len(downloads),
        "ranges": [r["headers"].get("Range") for r in downloads],
        "tokens_issued": len(m.issued),
        "other_host_requests": [
            {"path": r["path"][:80], "auth": "Authorization" in r["headers"], "token_in_url": "token=" in r["path"]}
            for r in o.requests
        ],
        "secret_on_other_host": any(o.received(s) for s in secrets),
        "sleeps_s": [round(s, 2) for s in SLEEPS][:12],
        "total_sleep_s": round(sum(SLEEPS), 1),
        "n_sleeps": len(SLEEPS),
        "secret_in_logs": any(s in logs for s in secrets),
        "secret_log_lines": [redact(x, secrets)[:160] for x in logs.splitlines() if any(s in x for s in secrets)][:3],
        "secret_in_error": any(s in err_text for s in secrets),
        "wall_s": round(wall, 2),
        "traceback": "".join(traceback.format_exception(error)[-9:])[-3000:] if error is not None else "",
    }
    rec["verdict"] = judge(rec, len(data))
    m.close()
    o.close()
    return rec


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "<SECRET>")
    return text


def judge(r: dict, size: int) -> str:
    c = r["case"]
    ok_download = bool(r["complete_file"]) and not r["outside_changed"] and not r["secret_in_logs"]
    if c == "plain":
        return "PASS" if ok_download else "FAIL"
    if c.startswith("name_"):
        escaped = bool(r["outside_changed"])
        if not escaped and not r["error"] and not r["complete_file"]:
            return "FAIL (reports success, no file in out_dir)"
        odd = any(ch < " " for k in r["files_in_out_dir"] for ch in k)
        return "FAIL (wrote outside out_dir)" if escaped else ("FAIL (control chars in a file name)" if odd else "PASS")
    if c == "redirect":
        return "FAIL (token sent to the other host)" if r["secret_on_other_host"] else "PASS"
    if c == "429":
        return "PASS" if ok_download and any(abs(s - 7) < 0.5 for s in r["sleeps_s"]) else "FAIL"
    if c == "503_twice":
        waits = r["sleeps_s"]
        grows = bool(waits) and max(waits) > 0 and waits == sorted(waits)  # urllib3 skips the first (0 s) wait
        return "PASS" if ok_download and r["download_requests"] == 3 and grows else "FAIL"
    if c == "500_forever":
        bounded = r["download_requests"] <= 30
        one_line = r["error"] and r["error_lines"] == 1
        return "PASS" if bounded and one_line and not r["complete_file"] and not r["secret_in_error"] else "FAIL"
    if c == "401_refresh":
        return "PASS" if ok_download and r["tokens_issued"] >= 2 else "FAIL"
    if c == "bad_md5":
        return "PASS" if r["error"] and not r["files_in_out_dir"] else "FAIL (no checksum check)"
    if c == "cut":
        return "PASS" if ok_download and "bytes=20000-" in r["ranges"] else "FAIL (no resume)"
    return "?"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=sorted(LIBS))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    time.sleep = _fake_sleep  # record the waits a library asks for, do not sleep them
    signer = jwt_signer() if args.lib != "ours" else (None, None)  # our client does not decode the token
    if args.lib == "ours":
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    records = [run_case(args.lib, c, signer) for c in CASES]
    for r in records:
        print(f"{r['case']:<14} {r['verdict']:<40} {r['expect']}")
        detail = {k: r[k] for k in ("error", "files_in_out_dir", "outside_changed", "download_requests", "ranges")}
        detail |= {k: r[k] for k in ("sleeps_s", "total_sleep_s", "other_host_requests", "secret_in_logs")}
        detail |= {k: r[k] for k in ("tokens_issued", "result")}
        print("               " + json.dumps(detail, default=str)[:600])
    passed = sum(r["verdict"] == "PASS" for r in records)
    print(f"{args.lib}: {passed}/{len(records)} cases pass")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
