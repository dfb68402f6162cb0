"""How missing source privileges are named (the live refusals: tests/integration/test_bad_days.py)."""

from __future__ import annotations

import pymysql

from syncd.errors import MissingGrant, SourceUnavailable
from syncd.source import grants
from syncd.source.binlog import _translate

DUMP_REFUSED = pymysql.err.OperationalError(
    1227, "Access denied; you need (at least one of) the REPLICATION SLAVE privilege(s) for this operation")


def test_a_refused_binlog_stream_is_a_missing_grant_not_a_lost_connection() -> None:
    error = _translate("shop", DUMP_REFUSED)
    assert isinstance(error, MissingGrant) and not error.retriable
    assert "REPLICATION SLAVE" in str(error) and "GRANT REPLICATION SLAVE ON *.* TO" in str(error)
    assert isinstance(_translate("shop", pymysql.err.OperationalError(2013, "Lost connection")),
                      SourceUnavailable)


def test_a_grant_problem_names_the_privilege_the_object_the_user_and_the_fix() -> None:
    denied = pymysql.err.OperationalError(1142, "SELECT command denied")
    problem = grants.GrantProblem("SELECT", "`shop`.`orders`", "'syncd'@'10.0.0.%'", "reconcile reads it",
                                  grants.refusal_text(denied))
    assert str(problem) == ("the user 'syncd'@'10.0.0.%' lacks SELECT on `shop`.`orders`: reconcile reads it "
                            "(the server refused: 1142 SELECT command denied). Fix: GRANT SELECT ON "
                            "`shop`.`orders` TO 'syncd'@'10.0.0.%'")
    assert grants.refused(DUMP_REFUSED)
    assert not grants.refused(pymysql.err.ProgrammingError(1146, "Table 'shop.orders' doesn't exist"))
