"""The console over HTTP, on SQLite and on the real PostgreSQL: queue, case, verdicts, auth."""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

import review.cases
from review import upgrade_schema
from review.auth import deactivate_user
from review.cases import apply_verdict
from review.errors import NotAllowed
from review.schema import AuditEntry, Base, CardActivity, Case, User, Verdict
from tests.console.conftest import T0, Console, alert, make_console


def _case_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'name="case_ids" value="(\d+)"', html)]


def _ids_by_tx(console: Console) -> dict[str, int]:
    with console.sessions() as session:
        return dict(session.execute(select(Case.transaction_id, Case.id)).all())


def test_migrations_build_exactly_the_models_and_rerun_as_a_no_op(engine: Engine) -> None:
    upgrade_schema(engine)  # second run: nothing to do, nothing fails
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_alerts_are_idempotent_by_transaction_id(console: Console) -> None:
    records = [alert(n) for n in range(10)]
    assert console.ingestor.add_alerts(records, now=T0) == 10
    assert console.ingestor.add_alerts(records[:4], now=T0) == 0
    ruled = alert(99, reason_codes=["rule:card_blocklist", "amount 1,000.00 (+0.9)"])
    console.ingestor.add_alerts([ruled], now=T0)
    with console.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 11
        case = session.scalar(select(Case).where(Case.transaction_id == "tx-00099"))
        assert case is not None
        assert case.rule_hits == ["card_blocklist"]
        assert case.reason_codes == ["amount 1,000.00 (+0.9)"]


def test_old_card_activity_is_forgotten_but_cases_stay(console: Console) -> None:
    records = [alert(n) for n in range(10)]  # event times T0 + n minutes
    console.ingestor.add_alerts(records, now=T0)
    console.ingestor.add_decisions(records)
    assert console.ingestor.forget_activity(before=T0 + timedelta(minutes=4)) == 4
    with console.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CardActivity)) == 6
        assert session.scalar(select(func.count()).select_from(Case)) == 10


def test_queue_pages_cover_every_case_once_in_order(console: Console) -> None:
    console.ingestor.add_alerts([alert(n) for n in range(23)], now=T0)
    small = make_console(console.sessions, page_size=5)
    assert small.login("ana") == 303
    for sort, key in (("oldest", "alerted_at"), ("score", "sort_score"), ("amount", "amount")):
        seen: list[int] = []
        url = f"/queue?sort={sort}"
        while True:
            page = small.client.get(url)
            assert page.status_code == 200
            seen += _case_ids(page.text)
            link = re.search(r'id="next-page" href="([^"]+)"', page.text)
            if link is None:
                break
            url = link.group(1).replace("&amp;", "&")
        assert len(seen) == len(set(seen)) == 23, sort
        with small.sessions() as session:
            column = getattr(Case, key)
            order = (
                (column.asc(), Case.id.asc())
                if sort == "oldest"
                else (
                    column.desc(),
                    Case.id.desc(),
                )
            )
            expected = list(session.scalars(select(Case.id).order_by(*order)))
        assert seen == expected, sort


def test_queue_filters(console: Console) -> None:
    console.ingestor.add_alerts([alert(n) for n in range(30)], now=T0)
    assert console.login("ana") == 303
    ids = _ids_by_tx(console)

    def shown(query: str) -> set[str]:
        page = console.client.get(f"/queue?{query}")
        assert page.status_code == 200, page.text
        by_id = {v: k for k, v in ids.items()}
        return {by_id[i] for i in _case_ids(page.text)}

    records = {r.transaction_id: r for r in (alert(n) for n in range(30))}
    assert shown("score_min=0.7") == {t for t, r in records.items() if (r.score or 0) >= 0.7}
    assert shown("amount_min=100&amount_max=200") == {
        t for t, r in records.items() if 100 <= r.amount <= 200
    }
    assert shown("card=card-3") == {t for t, r in records.items() if r.card_id == "card-3"}
    assert shown("merchant=m-2&decision=decline") == {
        t for t, r in records.items() if r.merchant_id == "m-2" and r.decision == "decline"
    }
    assert shown("since=2026-11-21") == set()
    assert len(shown("since=2026-11-20&until=2026-11-20")) == 30
    bad = console.client.get("/queue?score_min=high")
    assert bad.status_code == 400
    assert "score_min=&#39;high&#39; is not a number" in bad.text
    assert console.client.get("/queue?cursor=bm9wZQ").status_code == 400


def test_a_verdict_closes_the_case_and_is_audited(console: Console) -> None:
    console.ingestor.add_alerts([alert(1), alert(2)], now=T0)
    case_id = _ids_by_tx(console)["tx-00001"]
    assert console.login("ana") == 303
    page = console.client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "amount 7.4x the card&#39;s 30 days average" in page.text
    assert '<svg class="reasons"' in page.text
    assert page.text.count("<rect") == 2  # the threshold passed is a note, not a bar of 0
    assert '<p class="note">score 0.500 &gt;= review threshold 0.061</p>' in page.text
    console.clock.now = T0 + timedelta(hours=2)
    done = console.client.post(
        f"/cases/{case_id}/verdict",
        data={"csrf_token": console.csrf, "kind": "fraud", "comment": "card holder confirmed"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with console.sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert case.status == "fraud"
        assert case.reviewed_by == "ana"
        assert case.review_seconds == pytest.approx(2 * 3600 - 60 - 1)  # alerted at T0 + 1 min 1 s
        verdict = session.scalar(select(Verdict).where(Verdict.case_id == case_id))
        assert verdict is not None
        assert verdict.kind == "fraud"
        assert verdict.label_sent_at is None
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "ana"))
        assert "verdict.fraud" in list(actions)
    again = console.client.post(
        f"/cases/{case_id}/verdict",
        data={"csrf_token": console.csrf, "kind": "legit", "comment": ""},
    )
    assert again.status_code == 409
    assert "closed as fraud by ana" in again.text


def test_two_analysts_deciding_one_case_at_once_cannot_both_close_it(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read the case open before either writes. On SQLite, which has no row locks,
    both used to close it, one as fraud and one as legit: two opposite labels. Exactly
    one verdict must win, on either database."""
    console.ingestor.add_alerts([alert(1)], now=T0)
    case_id = _ids_by_tx(console)["tx-00001"]
    read = {"ana": threading.Event(), "lee": threading.Event()}
    get_case = review.cases._get_case

    def get_case_then_wait(session: Session, case_id: int, *, lock: bool = False) -> Case:
        case = get_case(session, case_id, lock=lock)
        name = threading.current_thread().name
        read[name].set()
        # the other's read, unless it is blocked behind our row lock (PostgreSQL)
        read["lee" if name == "ana" else "ana"].wait(timeout=2)
        return case

    monkeypatch.setattr(review.cases, "_get_case", get_case_then_wait)
    outcomes: dict[str, str] = {}

    def decide(kind: str) -> None:
        name = threading.current_thread().name
        try:
            with console.sessions.begin() as session:
                user = session.scalar(select(User).where(User.username == name))
                assert user is not None
                apply_verdict(session, [case_id], kind=kind, comment="", user=user, now=T0)
            outcomes[name] = "decided"
        except NotAllowed as exc:
            outcomes[name] = str(exc)

    threads = [
        threading.Thread(target=decide, args=(kind,), name=name)
        for name, kind in (("ana", "fraud"), ("lee", "legit"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 2
    assert list(outcomes.values()).count("decided") == 1, outcomes
    with console.sessions() as session:
        kinds = list(session.scalars(select(Verdict.kind).where(Verdict.case_id == case_id)))
    assert len(kinds) == 1


def test_bad_form_values_and_edited_links_are_refused_not_server_errors(
    console: Console,
) -> None:
    console.ingestor.add_alerts([alert(1)], now=T0)
    case_id = _ids_by_tx(console)["tx-00001"]
    assert console.login("ana") == 303

    def verdict(kind: str, comment: str) -> int:
        data = {"csrf_token": console.csrf, "kind": kind, "comment": comment}
        response = console.client.post(
            f"/cases/{case_id}/verdict", data=data, follow_redirects=False
        )
        return response.status_code

    assert verdict("maybe", "") == 400
    assert verdict("fraud", "x" * 2001) == 400  # used to be cut to 2,000 without a word
    # no-break spaces, as a pasted number has them: stored as typed before
    assert verdict("fraud", "card holder 4111\u00a01111\u00a01111\u00a01111 called") == 303
    with console.sessions() as session:
        comment = session.scalar(select(Verdict.comment).where(Verdict.case_id == case_id))
    assert comment == "card holder [PAN-REDACTED] called"  # pages show only card tokens
    assert console.client.get(f"/cases/{2**63}").status_code == 404
    naive = base64.urlsafe_b64encode(json.dumps(["oldest", "2026-11-20T10:00:00", 1]).encode())
    huge = base64.urlsafe_b64encode(json.dumps(["oldest", "2026-11-20T10:00:00Z", 10**20]).encode())
    for cursor in (naive, huge):
        assert console.client.get(f"/queue?cursor={cursor.decode()}").status_code == 400
    vast = base64.urlsafe_b64encode(json.dumps(["score", 10**400, 1]).encode()).decode()
    assert console.client.get(f"/queue?sort=score&cursor={vast}").status_code == 400
    typed = console.client.get("/cases/abc")  # FastAPI's JSON 422 before, even logged out
    assert typed.status_code == 400
    assert "the request&#39;s case_id &#39;abc&#39; is not valid" in typed.text
    # a list field is named, not its index (it said "the request's 0 is not valid")
    bulk = console.client.post(
        "/queue/bulk", data={"csrf_token": console.csrf, "action": "fraud", "case_ids": "abc"}
    )
    assert bulk.status_code == 400
    assert "the request&#39;s case_ids &#39;abc&#39; is not valid" in bulk.text
    # a field past the form parser's limit: the console's page, not FastAPI's JSON
    oversized = console.client.post(
        f"/cases/{case_id}/verdict",
        files={"comment": (None, "x" * 1_100_000)},
        data={"csrf_token": console.csrf, "kind": "fraud"},
    )
    assert oversized.status_code == 400
    assert oversized.headers["content-type"].startswith("text/html")
    assert "exceeded maximum size of 1024KB" in oversized.text
    wrong_method = console.client.delete("/queue")  # the console's page, with its Allow
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "GET")
    stranger = make_console(console.sessions).client.get("/cases/abc", follow_redirects=False)
    assert (stranger.status_code, stranger.headers["location"]) == (303, "/login")


def test_a_lead_corrects_a_closed_verdict_with_a_reason(console: Console) -> None:
    """A mis-click used to stay the transaction's label for good: nobody could change a
    closed case. A lead's correction is a second verdict, a later label."""
    console.ingestor.add_alerts([alert(1), alert(2)], now=T0)
    ids = _ids_by_tx(console)
    case_id = ids["tx-00001"]
    assert console.login("ana") == 303

    def post(client: Console, path: str, kind: str, comment: str) -> int:
        data = {"csrf_token": client.csrf, "kind": kind, "comment": comment}
        if path.endswith("/correction"):  # the correction form: the verdict route, flagged
            path, data["correction"] = path.replace("/correction", "/verdict"), "true"
        return client.client.post(path, data=data, follow_redirects=False).status_code

    assert post(console, f"/cases/{case_id}/verdict", "fraud", "looked odd") == 303
    assert post(console, f"/cases/{case_id}/correction", "legit", "mis-click") == 409  # analyst
    assert 'name="correction"' not in console.client.get(f"/cases/{case_id}").text
    lead = make_console(console.sessions)
    assert lead.login("lee") == 303
    assert "Correct to legitimate" in lead.client.get(f"/cases/{case_id}").text
    assert post(lead, f"/cases/{case_id}/correction", "legit", "  ") == 400  # say why
    assert post(lead, f"/cases/{case_id}/correction", "fraud", "same") == 409  # no change
    assert post(lead, f"/cases/{ids['tx-00002']}/correction", "legit", "open") == 409
    console.clock.now = lead.clock.now = T0 + timedelta(hours=3)
    assert post(lead, f"/cases/{case_id}/correction", "legit", "customer's own payment") == 303
    with console.sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert (case.status, case.reviewed_by) == ("legit", "lee")
        verdicts = session.execute(
            select(Verdict.kind, Verdict.analyst, Verdict.label_sent_at)
            .where(Verdict.case_id == case_id)
            .order_by(Verdict.id)
        ).all()
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "lee")))
    assert [(v.kind, v.analyst) for v in verdicts] == [("fraud", "ana"), ("legit", "lee")]
    assert verdicts[1].label_sent_at is None  # waiting for the relay, like any verdict
    assert "correction.legit" in actions


def test_escalated_cases_wait_for_a_lead_and_bulk_actions(console: Console) -> None:
    console.ingestor.add_alerts([alert(n) for n in range(4)], now=T0)
    ids = sorted(_ids_by_tx(console).values())
    assert console.login("ana") == 303
    bulk = console.client.post(
        "/queue/bulk",
        data={"csrf_token": console.csrf, "action": "escalate", "case_ids": [str(i) for i in ids]},
        follow_redirects=False,
    )
    assert bulk.status_code == 303
    refused = console.client.post(
        f"/cases/{ids[0]}/verdict", data={"csrf_token": console.csrf, "kind": "legit"}
    )
    assert refused.status_code == 409
    assert "only a lead" in refused.text
    lead = make_console(console.sessions)
    assert lead.login("lee") == 303
    decided = lead.client.post(
        "/queue/bulk",
        data={"csrf_token": lead.csrf, "action": "legit", "case_ids": [str(i) for i in ids[:2]]},
        follow_redirects=False,
    )
    assert decided.status_code == 303
    with console.sessions() as session:
        statuses = dict(session.execute(select(Case.id, Case.status)).all())
    assert [statuses[i] for i in ids] == ["legit", "legit", "escalated", "escalated"]


def test_pages_need_a_session(console: Console) -> None:
    console.ingestor.add_alerts([alert(1)], now=T0)
    for path in ("/queue", "/cases/1", "/dashboard", "/audit"):
        response = console.client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/login", path
    post = console.client.post("/cases/1/verdict", data={"kind": "fraud"})
    assert post.status_code == 401
    assert console.client.get("/healthz").json() == {"status": "ok"}


def test_forms_without_the_csrf_token_are_refused(console: Console) -> None:
    console.ingestor.add_alerts([alert(1)], now=T0)
    case_id = _ids_by_tx(console)["tx-00001"]
    assert console.login("ana") == 303
    for token in ("", "forged-token"):
        response = console.client.post(
            f"/cases/{case_id}/verdict", data={"csrf_token": token, "kind": "fraud"}
        )
        assert response.status_code == 403
        assert "CSRF" in response.text
    with console.sessions() as session:
        assert session.get(Case, case_id).status == "open"  # type: ignore[union-attr]
    # the login form has its own token (double-submit cookie)
    fresh = make_console(console.sessions)
    response = fresh.client.post(
        "/login", data={"username": "ana", "password": "x", "csrf_token": "made-up"}
    )
    assert response.status_code == 403


def test_analysts_cannot_read_the_audit_trail_and_nobody_can_edit_it(
    console: Console, engine: Engine
) -> None:
    assert console.login("ana") == 303
    assert console.client.get("/audit").status_code == 403
    lead = make_console(console.sessions)
    assert lead.login("lee") == 303
    page = lead.client.get("/audit")
    assert page.status_code == 200
    assert "user.add" in page.text
    for statement in ("UPDATE audit_log SET actor = 'nobody'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))


def test_repeated_wrong_passwords_lock_the_account(console: Console) -> None:
    for _ in range(5):
        assert console.login("ana", "wrong password!") == 401
    assert console.login("ana") == 429  # even the right password, while locked
    assert console.login("lee") == 303  # other accounts are unaffected
    console.clock.now += timedelta(minutes=16)
    assert console.login("ana") == 303


def test_sessions_expire(console: Console) -> None:
    assert console.login("ana") == 303
    assert console.client.get("/queue").status_code == 200
    console.clock.now += timedelta(hours=8, minutes=1)
    response = console.client.get("/queue", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_logout_ends_the_session(console: Console) -> None:
    assert console.login("ana") == 303
    out = console.client.post("/logout", data={"csrf_token": console.csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert console.client.get("/queue", follow_redirects=False).status_code == 303


def test_dashboard_counts(console: Console) -> None:
    console.ingestor.add_alerts([alert(n) for n in range(10)], now=T0)
    ids = sorted(_ids_by_tx(console).values())
    lead = make_console(console.sessions)
    assert lead.login("lee") == 303
    for kind, chosen in (("fraud", ids[:3]), ("legit", ids[3:5])):
        lead.client.post(
            "/queue/bulk",
            data={"csrf_token": lead.csrf, "action": kind, "case_ids": [str(i) for i in chosen]},
        )
    page = lead.client.get("/dashboard")
    assert page.status_code == 200
    tiles = {
        label.strip(): value
        for value, label in re.findall(r'<span class="big">([^<]+)</span>([^<]+)<', page.text)
    }
    assert tiles["alerts"] == "10"
    assert tiles["reviewed"] == "50%"
    assert tiles["alert precision (fraud / reviewed)"] == "60%"
    assert tiles["model in use"] == "v2"  # tx-00009 is the latest alert, model 1 + 9 % 2


def test_pages_send_security_headers_and_no_card_numbers(console: Console) -> None:
    console.ingestor.add_alerts([alert(1)], now=T0)
    assert console.login("ana") == 303
    page = console.client.get("/queue")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "set-cookie" not in page.headers
    assert not re.search(r"(?<!\d)\d{13,19}(?!\d)", page.text)


def test_a_deactivated_account_is_logged_out_and_cannot_log_in(console: Console) -> None:
    assert console.login("ana") == 303
    with console.sessions.begin() as session:
        deactivate_user(session, username="ana", now=T0)
    assert console.client.get("/queue", follow_redirects=False).status_code == 303
    assert console.login("ana") == 401
