"""What the OpenAPI document cannot say, for schemathesis (loaded by run.sh).

Two rules of an action depend on the clock, which no JSON Schema expresses:
its `at` is not in the future, and a promise's `promised_on` is at most
`[rules] max_promise_days` (60 here, the default) after `at`. Both are in the
fields' descriptions. A generated body that breaks only these is moved into
range: a future `at` becomes a past instant (same offset), a far
`promised_on` a date within the horizon. Nothing else changes, so a body
that breaks the schema still does, and the server must still refuse it.
"""
import re
import uuid
from datetime import date, datetime, timedelta, timezone

import schemathesis

ACTIONS = "/v1/accounts/{account_id}/actions"
MAX_PROMISE_DAYS = 60


def _instant(text):
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


KEY = re.compile(r"^[!-~]([ -~]*[!-~])?$")


@schemathesis.hook
def map_case(context, case):
    # A client sends a fresh Idempotency-Key with each new request (a key
    # reused with another body is refused with 422, as documented): a valid
    # generated key is made unique, an invalid one is left to be refused.
    headers = case.headers
    key = headers.get("Idempotency-Key") if headers is not None else None
    if isinstance(key, str) and len(key) <= 255 and KEY.match(key):
        headers["Idempotency-Key"] = key[:200] + "-" + uuid.uuid4().hex
    body = case.body
    if case.operation.path != ACTIONS or not isinstance(body, dict):
        return case
    at = _instant(body["at"]) if isinstance(body.get("at"), str) else None
    if at is not None and at > datetime.now(timezone.utc) - timedelta(minutes=1):
        at = (datetime.now(timezone.utc) - timedelta(hours=1)).astimezone(at.tzinfo)
        body["at"] = at.isoformat()
    on = body.get("promised_on")
    if at is not None and isinstance(on, str):
        try:
            day = date.fromisoformat(on)
        except ValueError:
            day = None
        if day is not None and (day - at.date()).days > MAX_PROMISE_DAYS:
            body["promised_on"] = (at.date() + timedelta(days=7)).isoformat()
    return case

