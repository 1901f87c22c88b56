"""What Grafana does with the dashboards Osprey ships (deploy/helm/osprey/files/grafana): the
template variable and macro expansion of its PostgreSQL, Jaeger, Tempo and Prometheus data
sources, and the requests those data sources send. Used by test_grafana_dashboards.py and
test_grafana_prometheus.py.

Sources (read, not copied), grafana/grafana:
- Template variables: public/app/features/templating/template_srv.ts (`$var`, `${var}`,
  `${var:fmt}`, `[[var]]`); the SQL data sources' `interpolateVariable`
  (public/app/features/plugins/sql/datasource/SqlDatasource.ts): a multi-value or include-All
  variable becomes a comma-separated list of single-quoted literals, a single-value one is
  inserted with its quotes doubled (no quotes added); "All" without a custom all value means
  every option. Variable queries run through the same expansion (metricFindQuery).
- `$__interval` / `$__interval_ms`: the panel's interval, from the time range divided by the
  panel's max data points, rounded by rangeutil.roundInterval, not below the data source's
  `timeInterval`; then formatted by gtime.FormatInterval in pgx/sql_engine.go `Interpolate`.
- Macros: pkg/tsdb/grafana-postgresql-datasource/macros.go (and its macros_test.go):
  `$__time(c)` → `c AS "time"`, `$__timeEpoch(c)` → `extract(epoch from c) as "time"`,
  `$__timeFilter(c)` → `c BETWEEN '<from>' AND '<to>'` with Go's time.RFC3339Nano in UTC,
  `$__timeFrom()`/`$__timeTo()` → the quoted literal, `$__timeGroup(c, '5m')` →
  `floor(extract(epoch from c)/300)*300` (` AS "time"` added by `$__timeGroupAlias`, and by
  `$__timeGroup` when a comma follows it directly), `$__unixEpochFilter(c)` →
  `c >= <from s> AND c <= <to s>`, `$__unixEpochFrom()`/`$__unixEpochTo()`,
  `$__unixEpochNanoFilter(c)`, `$__unixEpochGroup(c, '5m')` → `floor((c)/300)*300`.
  pgx/sql_engine.go runs the expanded SQL with `PgConn().Exec`: the simple query protocol.
- Jaeger: public/app/plugins/datasource/jaeger/datasource.ts `query()`: a target whose
  queryType is not 'search' and has `query` is a trace id → GET /api/traces/{id}; 'search' →
  GET /api/traces?service&operation&tags&minDuration&maxDuration&limit (empty ones dropped;
  tags logfmt → JSON object by util.ts convertTagsLogfmt) plus start/end in microseconds and
  lookback=custom; 'dependencyGraph' → GET /api/dependencies?endTs=<ms>&lookback=<ms>.
- Tempo: public/app/plugins/datasource/tempo/datasource.ts: queryType 'traceql' whose query is
  only hex digits is a trace-id lookup (the backend's GET /api/v2/traces/{id}); any other
  TraceQL → GET /api/search?q&limit&spss&start&end (seconds).
- Prometheus, frontend: packages/grafana-prometheus/src/datasource.ts `applyTemplateVariables`
  (dashboard variables by `interpolateQueryExpr`: a variable neither multi nor include-All gets
  `prometheusRegularEscape` (backslash and ' escaped), otherwise each value gets
  `prometheusSpecialRegexEscape` and several become `(a|b)`; a custom all value is inserted
  as written; `$__interval`/`$__interval_ms` are left to the backend) and metric_find_query.ts
  (`label_values(selector, label)` → GET /api/v1/label/<label>/values?match[]=selector&start&end,
  seconds, the labels-match API being assumed when no Prometheus type/version is configured;
  `label_values(label)` without match[]; `query_result(expr)` → GET /api/v1/query at the end).
  The panel's interval is computed as for the SQL data sources, its lower limit the panel's
  `interval` else the data source's `timeInterval` else 15s.
- Prometheus, backend: pkg/promlib/models/query.go `Parse`: step = the larger of the interval
  from gtime.GetIntervalFrom(timeInterval, target `interval`, the panel interval) through
  intervalv2 Calculate (range / max data points, rounded, not below that minimum) and the
  "safe" interval (range / 11000, rounded), times `intervalFactor`; `$__rate_interval` =
  max(panel interval + scrape interval, 4 × scrape interval), the scrape interval being
  `timeInterval` (15s when unset), written as Go's time.Duration String (`1m0s`);
  `$__interval` = gtime.FormatInterval(step), `$__range` = rounded seconds + `s`;
  client/client.go: POST (jsonData.httpMethod, POST by default) /api/v1/query_range with start
  and end rounded down to a multiple of the step, `step` in seconds; instant targets →
  /api/v1/query?time=end.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "deploy" / "helm" / "osprey" / "files" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
DASHBOARD_NAMES = ["overview", "service", "operation", "service-map", "traces", "red-metrics"]

# Data source types as Grafana 11 names them (the PostgreSQL plugin id since Grafana 10.3;
# `postgres` is its old alias).
POSTGRES_TYPES = {"grafana-postgresql-datasource", "postgres"}
JAEGER_TYPE = "jaeger"
TEMPO_TYPE = "tempo"
PROMETHEUS_TYPE = "prometheus"

# Panel types the dashboards may use, and what each needs from its query results.
KNOWN_PANEL_TYPES = {"row", "timeseries", "table", "stat", "nodeGraph", "histogram", "traces",
                     "text"}


class UnsupportedQuery(AssertionError):
    """A panel or target this harness does not know how to run the way Grafana would."""


def load_dashboards() -> dict[str, dict]:
    return {n: json.loads((DASHBOARD_DIR / f"{n}.json").read_text()) for n in DASHBOARD_NAMES}


def load_datasources() -> dict[str, dict]:
    doc = yaml.safe_load((GRAFANA_DIR / "datasources.yaml").read_text())
    return {d["uid"]: d for d in doc["datasources"]}


def panel_datasource_types(panel: dict, datasources: dict) -> set[str]:
    """The types of the data sources a panel's targets (or the panel) name."""
    refs = [t.get("datasource") or panel.get("datasource") for t in panel.get("targets", [])]
    return {datasources[r["uid"]]["type"] for r in refs
            if isinstance(r, dict) and r.get("uid") in datasources}


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []) if p.get("type") == "row" else [])
    return out


# ---------------------------------------------------------------- time and interval

def go_rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano of a UTC instant: trailing zeros of the fraction dropped."""
    base = datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 10**9:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def go_format_interval(ms: int) -> str:
    """grafana-plugin-sdk-go gtime.FormatInterval: the largest unit that fits, truncated."""
    for unit, size in (("y", 365 * 86400_000), ("d", 86400_000), ("h", 3600_000),
                       ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def parse_duration_ms(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)(ms|s|m|h|d|w|y)\s*", text)
    if not m:
        raise UnsupportedQuery(f"interval {text!r}")
    return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3600_000, "d": 86400_000,
                              "w": 7 * 86400_000, "y": 365 * 86400_000}[m.group(2)]


# rangeutil.roundInterval: (upper bound of the raw interval in ms, the interval chosen).
_ROUND = [(10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
          (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10_000), (17500, 15_000),
          (25000, 20_000), (45000, 30_000), (90000, 60_000), (210_000, 120_000),
          (450_000, 300_000), (1_050_000, 600_000), (2_100_000, 900_000),
          (4_500_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
          (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000)]


def round_interval_ms(raw_ms: float) -> int:
    """rangeutil.roundInterval / gtime.RoundInterval (the same table)."""
    return next((iv for bound, iv in _ROUND if raw_ms <= bound), 86_400_000)


def panel_interval_ms(frm_ns: int, to_ns: int, max_data_points: int, min_interval_ms: int) -> int:
    raw = (to_ns - frm_ns) // 10**6 / max_data_points
    return max(round_interval_ms(raw), min_interval_ms)


def go_seconds(ns: int) -> str:
    """strconv.FormatFloat(seconds, 'f', -1, 64) of an instant or a duration in ns: 15, 0.5,
    1700000000.25."""
    frac = f"{ns % 10**9:09d}".rstrip("0")
    return f"{ns // 10**9}.{frac}" if frac else f"{ns // 10**9}"


def go_duration_string(ms: int) -> str:
    """Go's time.Duration String of a whole number of milliseconds: 1m0s, 1h0m15s, 1.5s, 500ms."""
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}" + (f".{rest % 1000:03d}".rstrip("0") if rest % 1000 else "")
    if h:
        return f"{h}h{m}m{secs}s"
    if m:
        return f"{m}m{secs}s"
    return f"{secs}s"


@dataclass
class TimeRange:
    frm_ns: int
    to_ns: int

    @property
    def frm(self) -> str:
        return go_rfc3339nano(self.frm_ns)

    @property
    def to(self) -> str:
        return go_rfc3339nano(self.to_ns)


# ---------------------------------------------------------------- template variables

@dataclass
class Variable:
    name: str
    values: list[str]          # the selected values
    multi_or_all: bool         # SQL data sources quote these
    options: list[str] = field(default_factory=list)
    custom_all: bool = False   # "All" with a custom all value: inserted as written


_VAR_RE = re.compile(r"\$(\w+)|\$\{(\w+)(?::([^}]+))?\}|\[\[(\w+)(?::(\w+))?\]\]")


def replace_variables(text: str, variables: dict[str, Variable], sql: bool,
                      builtins: dict[str, str]) -> str:
    """templateSrv.replace: known variables substituted, unknown `$name`s left alone (Grafana's
    macros look like variables and are expanded later by the data source)."""

    def sub(m):
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if name in builtins:
            return builtins[name]
        var = variables.get(name)
        if var is None:
            return m.group(0)
        if fmt == "queryparam":
            return "&".join(f"var-{name}={quote(v, safe='')}" for v in var.values)
        if fmt not in (None, "raw"):
            raise UnsupportedQuery(f"variable format {fmt!r} in {text!r}")
        if sql and fmt is None:
            if var.multi_or_all:
                return ",".join("'" + v.replace("'", "''") + "'" for v in var.values)
            if len(var.values) == 1:
                return var.values[0].replace("'", "''")
        if len(var.values) == 1:
            return var.values[0]
        return "{" + ",".join(var.values) + "}"

    return _VAR_RE.sub(sub, text)


def prometheus_regular_escape(value: str) -> str:
    """prometheusRegularEscape: a backslash doubled, a quote as two backslashes and a quote."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def prometheus_regex_escape(value: str) -> str:
    """prometheusSpecialRegexEscape: a backslash as four, each regex metacharacter (and ')
    behind two backslashes (the PromQL string literal turns them into one)."""
    value = value.replace("\\", "\\" * 4)
    return re.sub(r"([$^*{}\[\]'+?.()|])", lambda m: "\\\\" + m.group(1), value)


def replace_prometheus_variables(text: str, variables: dict[str, Variable],
                                 builtins: dict[str, str]) -> str:
    """templateSrv.replace with the Prometheus data source's interpolateQueryExpr."""

    def sub(m):
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if name in builtins:
            return builtins[name]
        var = variables.get(name)
        if var is None:
            return m.group(0)
        if fmt is not None:
            raise UnsupportedQuery(f"variable format {fmt!r} in {text!r}")
        if var.custom_all:
            return var.values[0]
        if not var.multi_or_all:
            return prometheus_regular_escape(var.values[0])
        escaped = [prometheus_regex_escape(v) for v in var.values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return _VAR_RE.sub(sub, text)


def unknown_variables(text: str) -> list[str]:
    """`$name`s left after expansion that are not Grafana macros."""
    return [m.group(0) for m in _VAR_RE.finditer(text)
            if not (m.group(1) or "").startswith("__")]


# ---------------------------------------------------------------- PostgreSQL macros

def _split_args(text: str) -> list[str]:
    return [a.strip() for a in text.split(",")]


def expand_postgres_macros(sql: str, tr: TimeRange, interval_ms: int) -> str:
    """pgx/sql_engine.go Interpolate ($__interval_ms, $__interval), then macros.go."""
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$__interval", go_format_interval(interval_ms))
    sql = sql.replace("$__unixEpochFrom()", str(tr.frm_ns // 10**9))
    sql = sql.replace("$__unixEpochTo()", str(tr.to_ns // 10**9))
    original = sql

    def secs(arg: str) -> str:
        return format(parse_duration_ms(arg.strip("'\" ")) / 1000, "g")

    def macro(m) -> str:
        name, args = m.group(1), _split_args(m.group(2))
        end = original.find(m.group(0)) + len(m.group(0))
        if name == "__timeGroup" and original[end:end + 1] == ",":
            name = "__timeGroupAlias"
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{tr.frm}' AND '{tr.to}'"
        if name == "__timeFrom":
            return f"'{tr.frm}'"
        if name == "__timeTo":
            return f"'{tr.to}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) > 2:
                raise UnsupportedQuery(f"{m.group(0)}: fill modes are not ported")
            s = secs(args[1])
            out = f"floor(extract(epoch from {args[0]})/{s})*{s}"
            return out + ' AS "time"' if name == "__timeGroupAlias" else out
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {tr.frm_ns // 10**9} AND {args[0]} <= {tr.to_ns // 10**9}"
        if name == "__unixEpochNanoFilter":
            return f"{args[0]} >= {tr.frm_ns} AND {args[0]} <= {tr.to_ns}"
        if name in ("__unixEpochGroup", "__unixEpochGroupAlias"):
            s = secs(args[1])
            out = f"floor(({args[0]})/{s})*{s}"
            return out + ' AS "time"' if name == "__unixEpochGroupAlias" else out
        raise UnsupportedQuery(f"PostgreSQL macro ${name} is not ported")

    return re.sub(r"\$(__\w+)\(([^)]*)\)", macro, sql)


# ---------------------------------------------------------------- Jaeger tags

def logfmt_to_json(text: str) -> str:
    """util.ts convertTagsLogfmt: `k=v k2="v 2"` → JSON object text."""
    out = {}
    for m in re.finditer(r'([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|\S*))?', text):
        value = m.group(2)
        if value is None:
            out[m.group(1)] = True
        elif value.startswith('"'):
            out[m.group(1)] = json.loads(value)
        else:
            out[m.group(1)] = value
    return json.dumps(out, separators=(",", ":"))


# ---------------------------------------------------------------- running panel queries

@dataclass
class Frame:
    """One SQL result as Grafana's PostgreSQL data source reads it (text format)."""
    sql: str
    columns: list[str]
    type_oids: list[int]
    rows: list[list]

    def col(self, name: str) -> list:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


# PostgreSQL type oids → Python values (text format, as pgx's simple protocol reads them).
_INT_OIDS = {20, 21, 23}
_FLOAT_OIDS = {700, 701, 1700}
NUMERIC_OIDS = _INT_OIDS | _FLOAT_OIDS
TIME_OIDS = {1082, 1114, 1184}


def _pg_value(raw: bytes | None, oid: int):
    if raw is None:
        return None
    text = raw.decode()
    if oid in _INT_OIDS:
        return int(text)
    if oid in _FLOAT_OIDS:
        return float(text)
    if oid == 16:
        return text == "t"
    return text


def pg_simple_query(conn, sql: str) -> Frame:
    """One statement over the simple query protocol (pgx PgConn.Exec), text results."""
    from psycopg import pq
    res = conn.pgconn.exec_(sql.encode())
    if res.status != pq.ExecStatus.TUPLES_OK:
        msg = (res.error_message or b"").decode(errors="replace")
        raise AssertionError(f"SQL failed ({pq.ExecStatus(res.status).name}): {msg}\n{sql}")
    cols = [res.fname(i).decode() for i in range(res.nfields)]
    oids = [res.ftype(i) for i in range(res.nfields)]
    rows = [[_pg_value(res.get_value(r, c), oids[c]) for c in range(res.nfields)]
            for r in range(res.ntuples)]
    return Frame(sql, cols, oids, rows)


def proto_fields(buf: bytes):
    """(field number, wire type, value) of each top-level field of a protobuf message."""
    i = 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value

    while i < len(buf):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            yield num, wire, varint()
        elif wire == 1:
            yield num, wire, buf[i:i + 8]
            i += 8
        elif wire == 2:
            n = varint()
            yield num, wire, buf[i:i + n]
            i += n
        elif wire == 5:
            yield num, wire, buf[i:i + 4]
            i += 4
        else:
            raise AssertionError(f"protobuf wire type {wire}")


@dataclass
class Result:
    """What one target gave: `kind` names the request Grafana made."""
    kind: str
    request: str
    frame: Frame | None = None
    body: object = None


class Runner:
    """Runs a dashboard's variables and targets against a live `osprey up` (and Prometheus) as
    Grafana would: `datasources` is datasources.yaml by uid, `pg_connect()` opens a PG
    connection to the server (on first use), `http_base` replaces the data sources'
    `http://osprey:9201`, `prometheus_base` the Prometheus data source's URL."""

    def __init__(self, dashboard: dict, datasources: dict, pg_connect, http_base: str,
                 tr: TimeRange, max_data_points: int = 1000, prometheus_base: str | None = None):
        import requests
        self.http = requests.Session()
        self.dashboard, self.datasources = dashboard, datasources
        self.pg_connect, self._conn = pg_connect, None
        self.http_base, self.tr, self.max_data_points = http_base, tr, max_data_points
        self.prometheus_base = prometheus_base
        self.variables: dict[str, Variable] = {}

    @property
    def conn(self):
        if self._conn is None:
            if self.pg_connect is None:
                raise AssertionError("this runner has no PostgreSQL connection")
            self._conn = self.pg_connect()
        return self._conn

    # -- data sources
    def datasource(self, ref, where: str) -> dict:
        if not isinstance(ref, dict) or "uid" not in ref:
            raise UnsupportedQuery(f"{where}: data source {ref!r} is not a {{type, uid}} reference")
        ds = self.datasources.get(ref["uid"])
        if ds is None:
            raise UnsupportedQuery(f"{where}: data source uid {ref['uid']!r} not in datasources.yaml")
        if ref.get("type") not in (None, ds["type"]) and not (
                ref.get("type") in POSTGRES_TYPES and ds["type"] in POSTGRES_TYPES):
            raise UnsupportedQuery(f"{where}: type {ref.get('type')!r} but {ref['uid']} is {ds['type']!r}")
        return ds

    def url(self, ds: dict, path: str) -> str:
        base = re.sub(r"^https?://[^/]+", "", ds["url"])
        if ds["type"] == PROMETHEUS_TYPE:
            if self.prometheus_base is None:
                raise AssertionError("this runner has no Prometheus")
            return self.prometheus_base + base + path
        return self.http_base + base + path

    def get(self, ds: dict, path: str, params=None, headers=None):
        r = self.http.get(self.url(ds, path), params=params, headers=headers, timeout=120)
        assert r.status_code == 200, f"GET {r.url} → HTTP {r.status_code}: {r.text[:1000]}"
        return r

    def min_interval_ms(self, panel: dict, ds: dict) -> int:
        # The Prometheus data source's `interval` defaults to 15s; the SQL ones have none.
        default = "15s" if ds["type"] == PROMETHEUS_TYPE else "1ms"
        text = panel.get("interval") or ds.get("jsonData", {}).get("timeInterval") or default
        return parse_duration_ms(text.lstrip(">"))

    # -- variables
    def builtins(self, interval_ms: int) -> dict[str, str]:
        return {"__interval": go_format_interval(interval_ms), "__interval_ms": str(interval_ms),
                "__from": str(self.tr.frm_ns // 10**6), "__to": str(self.tr.to_ns // 10**6)}

    def expand_sql(self, sql: str, interval_ms: int) -> str:
        out = replace_variables(sql, self.variables, True, self.builtins(interval_ms))
        out = expand_postgres_macros(out, self.tr, interval_ms)
        left = unknown_variables(out)
        if left:
            raise UnsupportedQuery(f"undefined variables {left} in {sql!r}")
        return out

    def resolve_variables(self) -> dict[str, Variable]:
        for v in self.dashboard.get("templating", {}).get("list", []):
            where = f"variable {v.get('name')!r}"
            kind = v.get("type")
            is_prometheus = (kind == "query" and self.datasource(
                v.get("datasource"), where)["type"] == PROMETHEUS_TYPE)
            if is_prometheus:
                options = self.prometheus_variable_options(v, where)
            elif kind == "query":
                ds = self.datasource(v.get("datasource"), where)
                if ds["type"] not in POSTGRES_TYPES:
                    raise UnsupportedQuery(f"{where}: query variables of {ds['type']} are not ported")
                q = v.get("query")
                q = q.get("rawSql", q.get("query")) if isinstance(q, dict) else q
                frame = pg_simple_query(self.conn, self.expand_sql(q, self.min_interval_ms({}, ds)))
                # ResponseParser.transformMetricFindResponse: `__value` if there is one,
                # else every value of every column, first seen first.
                cols = ([frame.columns.index("__value")] if "__value" in frame.columns
                        else range(len(frame.columns)))
                options = list(dict.fromkeys(str(r[i]) for r in frame.rows for i in cols
                                             if r[i] is not None))
            elif kind == "textbox":
                options = [v.get("query", "")]
            elif kind == "custom":
                options = [o.strip() for o in v.get("query", "").split(",")]
            elif kind == "constant":
                options = [v.get("query", "")]
            else:
                raise UnsupportedQuery(f"{where}: variable type {kind!r} is not ported")
            if kind != "textbox" and not options:
                raise AssertionError(f"{where} has no values")
            current = (v.get("current") or {}).get("value")
            all_selected = v.get("includeAll") and current in ("$__all", ["$__all"])
            if all_selected:
                values = [v["allValue"]] if v.get("allValue") else options
            else:
                values = options[:1]
            multi = bool(v.get("multi") or v.get("includeAll"))
            custom_all = bool(all_selected and v.get("allValue"))
            if custom_all:
                multi = False  # a custom all value is inserted as written
            self.variables[v["name"]] = Variable(v["name"], values, multi, options, custom_all)
        return self.variables

    # -- targets
    def run_target(self, panel: dict, target: dict) -> Result:
        where = f"panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')!r}"
        ds = self.datasource(target.get("datasource") or panel.get("datasource"), where)
        if ds["type"] in POSTGRES_TYPES:
            return self.run_sql(panel, target, ds, where)
        if ds["type"] == PROMETHEUS_TYPE:
            return self.run_prometheus(panel, target, ds, where)
        if len([t for t in panel.get("targets", []) if not t.get("hide")]) != 1:
            raise UnsupportedQuery(f"{where}: Grafana's {ds['type']} data source runs only the "
                                   f"first target of a panel")
        if ds["type"] == JAEGER_TYPE:
            return self.run_jaeger(target, ds, where)
        if ds["type"] == TEMPO_TYPE:
            return self.run_tempo(target, ds, where)
        raise UnsupportedQuery(f"{where}: data source type {ds['type']!r} is not ported")

    def run_sql(self, panel, target, ds, where) -> Result:
        if not target.get("rawSql") or not (target.get("rawQuery") or target.get("editorMode") == "code"):
            raise UnsupportedQuery(f"{where}: only raw SQL (code mode) targets are ported")
        if target.get("format") not in ("table", "time_series"):
            raise UnsupportedQuery(f"{where}: format {target.get('format')!r}")
        interval = panel_interval_ms(self.tr.frm_ns, self.tr.to_ns,
                                     panel.get("maxDataPoints") or self.max_data_points,
                                     self.min_interval_ms(panel, ds))
        sql = self.expand_sql(target["rawSql"], interval)
        return Result("sql:" + target["format"], sql, frame=pg_simple_query(self.conn, sql))

    def vars(self, text) -> str:
        out = replace_variables(str(text or ""), self.variables, False, self.builtins(1000))
        if unknown_variables(out):
            raise UnsupportedQuery(f"undefined variables in {text!r}")
        return out

    def run_jaeger(self, target, ds, where) -> Result:
        qt = target.get("queryType")
        start_us, end_us = self.tr.frm_ns // 10**6 * 1000, self.tr.to_ns // 10**6 * 1000
        if qt == "dependencyGraph":
            end_ms = end_us // 1000
            params = {"endTs": end_ms, "lookback": end_ms - start_us // 1000}
            r = self.get(ds, "/api/dependencies", params)
            return Result("jaeger:dependencies", r.url, body=r.json())
        if qt != "search" and qt in (None, "") and target.get("query"):
            trace_id = self.vars(target["query"])
            r = self.get(ds, f"/api/traces/{quote(trace_id, safe='')}")
            return Result("jaeger:trace", r.url, body=r.json())
        if qt == "search":
            q = {k: self.vars(target.get(k)) for k in ("service", "operation", "tags",
                                                          "minDuration", "maxDuration")}
            q["limit"] = str(target.get("limit") or "")
            q = {k: v for k, v in q.items() if v}
            if not q.get("service"):
                raise AssertionError(f"{where}: 'You must select a service.'")
            if q.get("operation") == "All":
                del q["operation"]
            if "tags" in q:
                q["tags"] = logfmt_to_json(q["tags"])
            r = self.get(ds, "/api/traces", {**q, "start": start_us, "end": end_us,
                                               "lookback": "custom"})
            return Result("jaeger:search", r.url, body={"query": q, **r.json()})
        raise UnsupportedQuery(f"{where}: Jaeger queryType {qt!r} is not ported")

    def run_tempo(self, target, ds, where) -> Result:
        qt = target.get("queryType")
        if qt != "traceql":
            raise UnsupportedQuery(f"{where}: Tempo queryType {qt!r} is not ported")
        q = self.vars(target.get("query")).strip()
        if re.fullmatch(r"[0-9A-Fa-f]*", q):
            r = self.get(ds, f"/api/v2/traces/{q}", headers={"Accept": "application/protobuf"})
            trace = [v for n, w, v in proto_fields(r.content) if n == 1 and w == 2]
            batches = [v for t in trace for n, w, v in proto_fields(t) if n == 1 and w == 2]
            return Result("tempo:trace", r.url, body=batches)
        params = {"q": q, "limit": target.get("limit") or 20, "spss": target.get("spss") or 3,
                  "start": self.tr.frm_ns // 10**9, "end": self.tr.to_ns // 10**9}
        r = self.get(ds, "/api/search", params)
        return Result("tempo:search", r.url, body={"q": q, **r.json()})

    # -- Prometheus
    def prometheus_variable_options(self, v: dict, where: str) -> list[str]:
        """metricFindQuery: the query interpolated with the time range's variables, then run
        by PrometheusMetricFindQuery; the options are the texts it returns, in its order."""
        ds = self.datasource(v.get("datasource"), where)
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        interval = ds.get("jsonData", {}).get("timeInterval") or "15s"
        range_ms = (self.tr.to_ns - self.tr.frm_ns) // 10**6
        builtins = {"__interval": interval, "__interval_ms": str(parse_duration_ms(interval)),
                    "__range_ms": str(range_ms), "__range_s": str(round(range_ms / 1000)),
                    "__range": f"{round(range_ms / 1000)}s",
                    "__from": str(self.tr.frm_ns // 10**6), "__to": str(self.tr.to_ns // 10**6)}
        q = replace_prometheus_variables(q, self.variables, builtins).strip()
        if unknown_variables(q):
            raise UnsupportedQuery(f"{where}: undefined variables in {q!r}")
        start, end = self.tr.frm_ns // 10**9, -(-self.tr.to_ns // 10**9)
        m = re.fullmatch(r"label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)\s*", q)
        if m:
            params = {"start": str(start), "end": str(end)}
            if m.group(1) and m.group(1).replace(" ", "") != "{}":
                params["match[]"] = m.group(1)
            body = self.prometheus_api(ds, "GET", f"/api/v1/label/{m.group(2)}/values", params)
            return [str(x) for x in body["data"]]
        m = re.fullmatch(r"query_result\((.+)\)\s*", q)
        if m:
            body = self.prometheus_api(ds, "GET", "/api/v1/query",
                                       {"query": m.group(1), "time": str(end)})
            if body["data"]["resultType"] != "vector":
                raise UnsupportedQuery(f"{where}: query_result of a {body['data']['resultType']}")
            out = []
            for r in body["data"]["result"]:
                labels = dict(r["metric"])
                name = labels.pop("__name__", "")
                text = name + "{" + ",".join(f'{k}="{x}"' for k, x in labels.items()) + "}"
                out.append(f"{text} {r['value'][1]} {int(r['value'][0] * 1000)}")
            return out
        raise UnsupportedQuery(f"{where}: Prometheus variable query {q!r} is not ported")

    def prometheus_api(self, ds: dict, method: str, path: str, params: dict) -> dict:
        """One Prometheus API call; fails unless HTTP 200 and status success."""
        if method == "POST":
            r = self.http.post(self.url(ds, path), data=params, timeout=120)
        else:
            r = self.http.get(self.url(ds, path), params=params, timeout=120)
        what = f"{method} {r.url} {params if method == 'POST' else ''}"
        assert r.status_code == 200, f"{what} → HTTP {r.status_code}: {r.text[:1000]}"
        body = r.json()
        assert body.get("status") == "success", f"{what} → {body}"
        return body

    def run_prometheus(self, panel, target, ds, where) -> Result:
        if target.get("format", "time_series") not in ("time_series", "table"):
            raise UnsupportedQuery(f"{where}: format {target.get('format')!r}")
        if target.get("exemplar"):
            raise UnsupportedQuery(f"{where}: exemplar queries are not ported")
        if target.get("instant") and target.get("range"):
            raise UnsupportedQuery(f"{where}: 'Both' (range and instant) is not ported")
        if not target.get("expr"):
            raise UnsupportedQuery(f"{where}: no expr")
        json_data = ds.get("jsonData", {})
        scrape = json_data.get("timeInterval", "")
        max_points = panel.get("maxDataPoints") or self.max_data_points
        # The frontend: the panel's interval (the request's intervalMs).
        interval_ms = panel_interval_ms(self.tr.frm_ns, self.tr.to_ns, max_points,
                                        self.min_interval_ms(panel, ds))
        rate_vars = ("$__rate_interval", "${__rate_interval}")
        interval_vars = ("$__interval", "${__interval}")
        # applyTemplateVariables: dashboard variables; $__interval(_ms) kept for the backend.
        frontend = {"__interval": "$__interval", "__interval_ms": "$__interval_ms",
                    "__from": str(self.tr.frm_ns // 10**6), "__to": str(self.tr.to_ns // 10**6)}
        expr = replace_prometheus_variables(target["expr"], self.variables, frontend)
        min_step = replace_variables(str(target.get("interval") or ""), self.variables, False,
                                     frontend)
        # Backend (promlib models.Parse): the step.
        query_min = "" if min_step in rate_vars + interval_vars + (
            "$__interval_ms", "${__interval_ms}", "$__rate_interval_ms",
            "${__rate_interval_ms}") else min_step
        if query_min not in ("", "0s"):
            min_ms = parse_duration_ms(query_min.strip("<>"))
        else:
            min_ms = interval_ms
        range_ms = (self.tr.to_ns - self.tr.frm_ns) // 10**6
        raw = range_ms / max_points
        calculated = min_ms if raw < min_ms else round_interval_ms(raw)
        safe = round_interval_ms(range_ms / 11000)
        adjusted = max(calculated, safe)

        def rate_interval(query_interval_ms: int, requested: str) -> int:
            scrape_ms = parse_duration_ms((requested or "15s").strip("<>"))
            return max(query_interval_ms + scrape_ms, 4 * scrape_ms)
        if min_step in rate_vars:
            step = rate_interval(adjusted, scrape)
        else:
            step = adjusted * (target.get("intervalFactor") or 1)
        if min_step in rate_vars:
            rate = step
        else:
            requested = go_duration_string(step) if min_step in interval_vars else min_step
            rate = rate_interval(interval_ms, requested or scrape)
        range_s = round(range_ms / 1000)
        for name, value in (("__interval_ms", str(step)), ("__interval", go_format_interval(step)),
                            ("__range_ms", str(range_ms)), ("__range_s", str(range_s)),
                            ("__range", f"{range_s}s"), ("__rate_interval_ms", str(rate)),
                            ("__rate_interval", go_duration_string(rate))):
            expr = expr.replace("$" + name, value).replace("${" + name + "}", value)
        if unknown_variables(expr):
            raise UnsupportedQuery(f"{where}: undefined variables in {expr!r}")
        method = json_data.get("httpMethod") or "POST"
        if target.get("instant"):
            params = {"query": expr, "time": go_seconds(self.tr.to_ns)}
            body = self.prometheus_api(ds, method, "/api/v1/query", params)
            return Result("prometheus:instant", f"/api/v1/query {params}", body=body["data"])
        step_ns = step * 10**6
        params = {"query": expr,
                  "start": go_seconds(self.tr.frm_ns // step_ns * step_ns),
                  "end": go_seconds(self.tr.to_ns // step_ns * step_ns),
                  "step": go_seconds(step_ns)}
        body = self.prometheus_api(ds, method, "/api/v1/query_range", params)
        return Result("prometheus:range", f"/api/v1/query_range {params}", body=body["data"])
