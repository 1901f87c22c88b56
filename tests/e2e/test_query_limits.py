"""The SQL API is read-only, reports errors as HTTP 400 + JSON, and enforces --query-max-rows
and --query-timeout; `osprey sql` prints json, csv and tables."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess

import pytest
import requests

from conftest import wait_until
from otlp import send_ok, simple_request


def error_of(resp: requests.Response, status=400) -> str:
    assert resp.status_code == status, f"want HTTP {status}, got {resp.status_code}: {resp.text[:500]}"
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


@pytest.mark.parametrize("statement", [
    "create table x(a int)",
    "insert into spans (trace_id) values ('00')",
    "drop table spans",
    "delete from spans",
    "create view v as select 1",
    "update spans set span_name = 'x'",
])
def test_writes_are_refused_as_read_only(server, statement):
    err = error_of(server.sql_response(statement))
    assert "read-only" in err.lower(), err
    # The table is untouched.
    server.sql("select count(*) from spans")


def test_syntax_and_name_errors_name_the_problem(server):
    err = error_of(server.sql_response("selec span_id from spans"))
    assert "selec" in err.lower(), err
    err = error_of(server.sql_response("select no_such_column from spans"))
    assert "no_such_column" in err, err
    err = error_of(server.sql_response("select 1 from no_such_table"))
    assert "no_such_table" in err, err


def test_bad_request_bodies(server):
    r = requests.post(server.api + "/api/sql", data="not json",
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    r = requests.post(server.api + "/api/sql", json={"query": "select 1"}, timeout=30)
    assert 400 <= r.status_code < 500, r.text


def test_row_limit(make_server):
    server = make_server("--query-max-rows=10")
    assert server.sql("select * from generate_series(1, 10)")["rows"] == [[i] for i in range(1, 11)]
    assert len(server.sql("select * from generate_series(1, 1000) limit 5")["rows"]) == 5
    err = error_of(server.sql_response("select * from generate_series(1, 11)"))
    assert "row limit" in err.lower(), err
    err = error_of(server.sql_response("select * from generate_series(1, 100000000)"))
    assert "row limit" in err.lower(), err
    assert server.healthy()


def test_query_timeout(make_server):
    server = make_server("--query-timeout=1s")
    # ~10^10 row pairs with a filter no statistic can answer: minutes of work without a limit.
    expensive = ("select count(*) from generate_series(1, 100000) a "
                 "cross join generate_series(1, 100000) b where (a.value * b.value) % 7 = 3")
    r = server.sql_response(expensive, timeout=120)
    assert r.status_code in (400, 408, 503), f"HTTP {r.status_code}: {r.text[:500]}"
    err = r.json().get("error", "")
    assert "time limit" in err.lower(), err
    assert server.healthy()
    assert server.sql("select 1 as one")["rows"] == [[1]]


def test_sql_values_are_json_typed(server):
    body = server.sql("select 1 as i, 1.5 as f, 'x' as s, true as b, cast(null as bigint) as n1, "
                      "cast(null as varchar) as n2, null as n3")
    assert body == {"columns": ["i", "f", "s", "b", "n1", "n2", "n3"],
                    "rows": [[1, 1.5, "x", True, None, None, None]]}


# ---------------------------------------------------------------- osprey sql (CLI)

def cli(server, *args, check=True):
    p = subprocess.run([str(server.binary), "sql", "--url", server.api, *args],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


QUERY = "select 1 as a, 'x' as b union all select 2, 'y,z' order by a"


def test_cli_json(server):
    out = json.loads(cli(server, "--format", "json", QUERY).stdout)
    assert out == {"columns": ["a", "b"], "rows": [[1, "x"], [2, "y,z"]]}
    assert out == server.sql(QUERY)


def test_cli_csv(server):
    out = cli(server, "--format", "csv", QUERY).stdout
    assert list(csv.reader(io.StringIO(out))) == [["a", "b"], ["1", "x"], ["2", "y,z"]]


def test_cli_table(server):
    out = cli(server, "--format", "table", QUERY).stdout
    assert re.search(r"\|\s*a\s*\|\s*b\s*\|", out), out
    assert re.search(r"\|\s*1\s*\|\s*x\s*\|", out), out
    assert re.search(r"\|\s*2\s*\|\s*y,z\s*\|", out), out
    assert re.search(r"^[+-][-+]+$", out, re.M), f"no table border:\n{out}"


def test_cli_default_format_is_table(server):
    assert cli(server, QUERY).stdout == cli(server, "--format", "table", QUERY).stdout


def test_cli_reads_spans(server):
    req, ids = simple_request(3, service="cli-svc")
    send_ok(server.otlp_http, req)
    q = "select span_id, service_name from spans order by span_id"
    wait_until(lambda: len(server.sql(q)["rows"]) == 3, what="3 spans")
    out = json.loads(cli(server, "--format", "json", q).stdout)
    assert out["rows"] == [[i, "cli-svc"] for i in sorted(ids)]


def test_cli_failing_query(server):
    p = cli(server, "--format", "json", "select nope from no_such_table", check=False)
    assert p.returncode != 0
    assert "no_such_table" in p.stderr, p.stderr
    assert p.stdout.strip() == "", p.stdout
    p = cli(server, "drop table spans", check=False)
    assert p.returncode != 0 and "read-only" in p.stderr.lower(), p.stderr


def test_cli_unreachable_server(server):
    port = server.http_port
    server.stop()
    p = subprocess.run([str(server.binary), "sql", "--url", f"http://127.0.0.1:{port}", "select 1"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert p.stderr.strip(), "an unreachable server should be reported on stderr"
