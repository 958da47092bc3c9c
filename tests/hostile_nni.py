"""A corpus of hostile or broken ``nni.sqlite`` files, generated from a good synthetic one.

Each case is a function that writes one file; ``stored`` says what the service must do with it:
True = ingest it (hostile values kept as off-contract raw data), False = refuse it (a 4xx on
import, a recorded sync error on sync). Either way: in bounded time and never a 5xx.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synthetic_nni import NNI_SCHEMA, write_nni_sqlite

DEEP = 100_000  # beyond Python's json recursion limit
MIDDLE = 500  # parses with json, beyond orjson's 255 levels and our 32


@dataclass(frozen=True)
class Case:
    name: str
    stored: bool  # through POST /api/import
    write: Callable[[Path, str], None]
    # Through the registry sync, when it differs: the registry names the experiment, so a file
    # without a usable ExperimentProfile is still that experiment (with what trials it has).
    sync_stored: bool | None = None

    @property
    def stored_by_sync(self) -> bool:
        return self.stored if self.sync_stored is None else self.sync_stored


def _good(path: Path, exp_id: str, n_trials: int = 4) -> sqlite3.Connection:
    write_nni_sqlite(path, exp_id, n_trials=n_trials, seed=7, report_config=False)
    return sqlite3.connect(path)


def _edit(*sql: str, params: tuple[object, ...] = ()) -> Callable[[Path, str], None]:
    """A good file, then ``sql`` run on it (``params`` for the last statement)."""

    def write(path: Path, exp_id: str) -> None:
        conn = _good(path, exp_id)
        for stmt in sql[:-1]:
            conn.execute(stmt)
        conn.execute(sql[-1], params)
        conn.commit()
        conn.close()

    return write


def _metric(final_text: object) -> Callable[[Path, str], None]:
    return _edit("UPDATE MetricData SET data = ? WHERE type = 'FINAL'", params=(final_text,))


def _params(hp: object) -> Callable[[Path, str], None]:
    """Every trial's hyper-parameter event set to ``hp`` (JSON text, or a raw value)."""
    text = hp if isinstance(hp, str | bytes | int | type(None)) else json.dumps(hp)
    return _edit("UPDATE TrialJobEvent SET data = ? WHERE event = 'WAITING'", params=(text,))


def _hp(parameters: object, pid: object = 0) -> dict[str, object]:
    return {"parameter_id": pid, "parameter_source": "algorithm", "parameters": parameters}


def _profile(params_text: object, exp_id: object = None) -> Callable[[Path, str], None]:
    def write(path: Path, given_id: str) -> None:
        conn = _good(path, given_id)
        conn.execute("UPDATE ExperimentProfile SET params = ?, id = ?",
                     (params_text, given_id if exp_id is None else exp_id))  # fmt: skip
        conn.commit()
        conn.close()

    return write


def _replace_table(table: str, ddl: str) -> Callable[[Path, str], None]:
    return _edit(f"DROP TABLE {table}", ddl)


def _truncated(fraction: float) -> Callable[[Path, str], None]:
    def write(path: Path, exp_id: str) -> None:
        _good(path, exp_id, n_trials=40).close()
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return write


def _raw_bytes(data: bytes) -> Callable[[Path, str], None]:
    def write(path: Path, exp_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return write


def _empty_schema(path: Path, exp_id: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(NNI_SCHEMA)
    conn.close()


def _many_rows(path: Path, exp_id: str) -> None:
    conn = _good(path, exp_id)
    conn.executemany("INSERT INTO MetricData VALUES (0, 'T00000', '0', 'PERIODICAL', ?, '\"1\"')",
                     [(i,) for i in range(3000)])  # fmt: skip
    conn.commit()
    conn.close()


_RECURSIVE = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
              "SELECT n AS timestamp, 'T' || n AS trialJobId, 'RUNNING' AS event, NULL AS data, "
              "NULL AS logPath, n AS sequenceId, NULL AS message, NULL AS environmentId FROM r")
_RECURSIVE_METRICS = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                      "SELECT n AS timestamp, 'T00000' AS trialJobId, '0' AS parameterId, "
                      "'PERIODICAL' AS type, n AS sequence, '\"1\"' AS data FROM r")

CASES: list[Case] = [
    # Schema objects that are not NNI's plain tables.
    Case("view-recursive-events", False,
         _replace_table("TrialJobEvent", f"CREATE VIEW TrialJobEvent AS {_RECURSIVE}")),
    Case("view-recursive-metrics", False,
         _replace_table("MetricData", f"CREATE VIEW MetricData AS {_RECURSIVE_METRICS}")),
    Case("view-profile", False, _replace_table(
        "ExperimentProfile", "CREATE VIEW ExperimentProfile AS SELECT '{}' AS params, 'x' AS id, "
        "0 AS startTime, 0 AS endTime, 1 AS revision")),
    Case("extra-view", False, _edit("CREATE VIEW evil AS SELECT * FROM MetricData")),
    Case("trigger", False, _edit("CREATE TRIGGER t AFTER INSERT ON MetricData BEGIN "
                                 "DELETE FROM TrialJobEvent; END")),
    Case("generated-column", False, _replace_table(
        "MetricData", "CREATE TABLE MetricData (timestamp integer, trialJobId text, parameterId "
        "text, type text, sequence integer, data text GENERATED ALWAYS AS "
        "(hex(zeroblob(100000000))) VIRTUAL)")),
    Case("without-rowid", False, _replace_table(
        "MetricData", "CREATE TABLE MetricData (timestamp integer, trialJobId text, parameterId "
        "text, type text, sequence integer PRIMARY KEY, data text) WITHOUT ROWID")),
    Case("missing-table", False, _edit("DROP TABLE MetricData")),
    Case("missing-column", False, _replace_table(
        "TrialJobEvent", "CREATE TABLE TrialJobEvent (timestamp integer, trialJobId text)")),
    Case("extra-table-ignored", True, _edit("CREATE TABLE notes (x text)",
                                            "INSERT INTO notes VALUES ('hello')")),
    # Bounds of the work.
    Case("huge-value", False, _metric("9" * 2_000_000)),
    Case("too-many-rows", False, _many_rows),  # the test lowers MAX_METRIC_ROWS to 1000
    # Values nested, huge, non-finite, out of range.
    Case("metric-nested-deep", True, _metric("[" * DEEP + "]" * DEEP)),
    Case("metric-nested-middle", True, _metric(json.dumps(
        json.dumps({"default": 1.0, "x": json.loads("[" * MIDDLE + "]" * MIDDLE)})))),
    Case("params-nested-deep", True, _params('{"parameters":' + "[" * DEEP + "]" * DEEP + "}")),
    Case("params-nested-middle", True, _params(_hp({"layers": "4", "deep": json.loads(
        "[" * MIDDLE + "]" * MIDDLE)}))),
    Case("metric-nan-inf", True, _metric(json.dumps(json.dumps(
        {"default": float("nan"), "test_error": float("inf"), "var_4": float("-inf")})))),
    Case("metric-int-beyond-double", True, _metric('{"default": 1' + "0" * 400 + "}")),
    Case("metric-1e999", True, _metric('"1e999"')),
    Case("params-nonfinite", True, _params(_hp({"layers": "4", "lambda_4": float("inf"),
                                                "seed": float("nan")}))),
    Case("params-lambda-1e999", True, _params(_hp({"layers": "4", "lambda_4": "1e999"}))),
    Case("seed-2^40-legal", True, _params(_hp({"layers": "4", "seed": 2**40}))),
    Case("seed-2^70", True, _params(_hp({"layers": "4", "seed": 2**70}))),
    Case("best-epoch-2^65", True, _metric(json.dumps(json.dumps(
        {"default": 1.0, "best_epoch": 2**65})))),
    Case("layer-index-2^40", True, _params(_hp({"layers": str(2**40), f"lambda_{2**40}": 1.0}))),
    Case("sequence-id-2^70", True, _edit("UPDATE TrialJobEvent SET sequenceId = ? WHERE "
                                         "event = 'WAITING'", params=(str(2**70),))),
    Case("timestamp-2^70", True, _edit("UPDATE TrialJobEvent SET timestamp = ?",
                                       params=(str(2**70),))),
    Case("parameter-id-huge", True, _params(_hp({"layers": "4"}, pid=2**80))),
    # NULL and non-object fields.
    Case("profile-params-null", False, sync_stored=True, write=_profile(None)),
    Case("profile-params-list", False, sync_stored=True, write=_profile("[1, 2, 3]")),
    Case("profile-params-number", False, sync_stored=True, write=_profile("42")),
    Case("profile-id-null", False, sync_stored=True, write=_profile(
        json.dumps({"trialCommand": "python -m trials.mlp"}), exp_id="")),
    Case("profile-command-not-text", True, _profile(json.dumps({"trialCommand": {"a": 1},
                                                                "experimentName": [1]}))),
    Case("hp-null", True, _params(None)),
    Case("hp-list", True, _params("[1, 2]")),
    Case("hp-parameters-null", True, _params(_hp(None))),
    Case("hp-parameters-list", True, _params(_hp([1, 2, 3]))),
    Case("metric-null", True, _metric(None)),
    Case("metric-list", True, _metric(json.dumps(json.dumps([1, 2])))),
    Case("job-id-null", True, _edit("UPDATE TrialJobEvent SET trialJobId = NULL "
                                    "WHERE event = 'RUNNING'")),
    # Wrong types in NNI's columns.
    Case("timestamp-text", True, _edit("UPDATE TrialJobEvent SET timestamp = 'yesterday'")),
    Case("sequence-text", True, _edit("UPDATE TrialJobEvent SET sequenceId = 'abc'")),
    Case("job-id-integer", True, _edit("UPDATE TrialJobEvent SET trialJobId = 12345 "
                                       "WHERE trialJobId = 'T00001'")),
    # A blob where NNI writes text is read as 'x' + its hex digits (storable, and visibly odd).
    Case("job-id-blob", True, _edit("UPDATE TrialJobEvent SET trialJobId = ? WHERE trialJobId = "
                                    "'T00002'", params=(b"\xff\xfe\x00bad",))),
    Case("metric-blob", True, _metric(b"\xff\xfe\x00\x01")),
    Case("metric-type-integer", True, _edit("UPDATE MetricData SET type = 7")),
    Case("revision-text", True, _edit("UPDATE ExperimentProfile SET revision = 'latest'")),
    # Strings too long or not storable as text.
    Case("name-10k", True, _profile(json.dumps({"experimentName": "n" * 10_000,
                                                "trialCommand": "python -m trials.mlp"}))),
    Case("model-1000", True, _profile(json.dumps({"trialCommand": "python -m trials.mlp "
                                                  "--model " + "m" * 1000}))),
    Case("nul-and-surrogate", True, _profile(
        '{"experimentName": "a\\u0000b\\ud800c", "trialCommand": '
        '"python -m trials.mlp --model m\\u0000x --dataset \\udfff"}')),
    Case("params-nul-surrogate", True, _params('{"parameter_id": 0, "parameters": '
                                               '{"layers": "4\\u0000", "x\\ud800": "\\udc00"}}')),
    Case("job-id-100-chars", False, _edit("UPDATE TrialJobEvent SET trialJobId = ? WHERE "
                                          "trialJobId = 'T00000'", params=("J" * 100,))),
    Case("experiment-id-100-chars", False, _profile(json.dumps({"trialCommand": "x"}),
                                                    exp_id="E" * 100)),
    Case("experiment-id-path", False, _profile(json.dumps({"trialCommand": "x"}),
                                               exp_id="../../etc")),
    Case("status-long", True, _edit("UPDATE TrialJobEvent SET event = ? WHERE event = "
                                    "'SUCCEEDED'", params=("S" * 500,))),
    # Not (whole) SQLite files.
    Case("truncated-half", False, _truncated(0.5)),
    Case("truncated-header", False, _truncated(0.01)),
    Case("garbage-after-header", False, _raw_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)),
    Case("random-bytes", False, _raw_bytes(bytes(range(256)) * 40)),
    Case("empty-schema", False, sync_stored=True, write=_empty_schema),
]  # fmt: skip
