"""The usage endpoint's consumption as one PostgreSQL statement, sent in autocommit: one round
trip for the idempotency check, the tenant's limit and billing period, the conditional
increment, the per-second counter, the idempotency key's answer and the threshold notices
(`Quotas.consume_at_once`; the rules are handlers/quota.py's).

Why one statement is still atomic across the fleet: `held` locks the period's counter row
(`FOR UPDATE`, which in READ COMMITTED waits for a concurrent consumption and then reads the
row as it committed), so the check and the increment see the same, latest, total; and a single
statement commits or fails as a whole, so there is no transaction to keep open around it.

Why the idempotency key is checked twice: `prior` reads a key whose answer committed before
the statement began; a concurrent request with the same key is caught by the INSERT into
`usage_requests`, which waits for that request and then fails on the primary key, undoing the
whole statement (the caller then reads the first answer).

What it leaves to the general path (handlers/quota.record, the same rules in several
statements), by answering NULL and writing nothing: a tenant without entitlements, a moment
before the current period, a period whose counter does not exist yet (it is built from the
per-second counters), and a hard refusal while the feature has expired reservations to give
back first. Caveat: these rules now live twice, here in SQL and there in Python;
tests/integration/test_usage_api.py runs its scenarios through both and compares.
"""
from __future__ import annotations

from sqlalchemy import text

# Where the SQL writes a timestamp, it writes it as Python's `datetime.isoformat()` of the UTC
# moment does ("2026-11-02T12:00:00+00:00", microseconds only when there are some), so an answer
# is the same whichever path gave it.
_ISO = ("(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {c}) = {c} "
        "THEN '' ELSE to_char({c} AT TIME ZONE 'UTC', '.US') END || '+00:00')")


def iso(column: str) -> str:
    return _ISO.format(c=column)


CONSUME = text(f"""
WITH
snap AS (  -- the tenant's limit of the feature: NULL when it has the feature without one, 0 without it
  SELECT CASE WHEN s.limits ->> :feature IS NOT NULL THEN CAST(s.limits ->> :feature AS bigint)
              WHEN CAST(s.features AS jsonb) @> jsonb_build_array(CAST(:feature AS text)) THEN NULL
              ELSE 0 END AS lim
  FROM entitlement_snapshots s WHERE s.tenant_id = :tenant),
sub AS (  -- the period of the newest subscription that grants the plan, as last read from Stripe
  SELECT s.current_period_start AS ps, s.current_period_end AS pe FROM subscriptions s
  WHERE s.tenant_id = :tenant AND s.status = ANY(CAST(:granting AS text[])) ORDER BY s.stripe_created DESC LIMIT 1),
copy AS (  -- that period, else the calendar month (UTC) of the moment
  SELECT CASE WHEN sub.pe IS NOT NULL AND sub.ps IS NOT NULL THEN sub.ps ELSE m.ps END AS ps,
         CASE WHEN sub.pe IS NOT NULL AND sub.ps IS NOT NULL THEN sub.pe ELSE m.ps + interval '1 month' END AS pe
  FROM (SELECT date_trunc('month', CAST(:at AS timestamptz) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS ps) m
  LEFT JOIN sub ON true),
per AS (  -- past the copy's end (a renewal whose webhook is late): from that end, end unknown
  SELECT CASE WHEN CAST(:at AS timestamptz) >= copy.pe THEN copy.pe ELSE copy.ps END AS ps,
         CASE WHEN CAST(:at AS timestamptz) >= copy.pe THEN NULL ELSE copy.pe END AS pe,
         CAST(:at AS timestamptz) >= copy.ps AS inside
  FROM copy),
prior AS (
  SELECT r.answer FROM usage_requests r WHERE r.tenant_id = :tenant AND r.idempotency_key = :key),
held AS (
  SELECT c.used, c.reserved FROM quota_counters c, per
  WHERE c.tenant_id = :tenant AND c.feature = :feature AND c.period_start = per.ps AND per.inside
    AND NOT EXISTS (SELECT 1 FROM prior)
  FOR UPDATE OF c),
go AS (
  SELECT held.used, held.reserved, snap.lim,
         (NOT :hard OR snap.lim IS NULL OR held.used + held.reserved + :quantity <= snap.lim) AS fits
  FROM held, snap),
taken AS (
  UPDATE quota_counters c SET used = c.used + :quantity FROM go, per
  WHERE c.tenant_id = :tenant AND c.feature = :feature AND c.period_start = per.ps AND go.fits
  RETURNING c.used, c.reserved),
stale AS (  -- expired reservations the general path gives back before it refuses
  SELECT 1 FROM usage_reservations r
  WHERE r.state = 'held' AND r.expires_at <= :now AND r.tenant_id = :tenant AND r.feature = :feature LIMIT 1),
settled AS (
  SELECT json_build_object(
           'allowed', taken.used IS NOT NULL AND (go.lim IS NULL OR taken.used + taken.reserved <= go.lim),
           'used', COALESCE(taken.used, go.used),
           'limit', go.lim,
           'remaining', CASE WHEN go.lim IS NULL THEN NULL
                        ELSE GREATEST(go.lim - COALESCE(taken.used, go.used) - COALESCE(taken.reserved, go.reserved), 0)
                        END,
           'period_start', {iso('per.ps')},
           'period_end', CASE WHEN per.pe IS NULL THEN NULL ELSE {iso('per.pe')} END) AS answer
  FROM go CROSS JOIN per LEFT JOIN taken ON true
  WHERE go.fits OR NOT EXISTS (SELECT 1 FROM stale)),
remembered AS (  -- no ON CONFLICT: a concurrent first use of the key fails this statement
  INSERT INTO usage_requests (tenant_id, idempotency_key, answer, created_at)
  SELECT :tenant, :key, settled.answer, :now FROM settled RETURNING 1),
counted AS (
  INSERT INTO usage_counters (tenant_id, meter, used_at, used)
  SELECT :tenant, :feature, :second, :quantity FROM taken
  ON CONFLICT (tenant_id, meter, used_at) DO UPDATE SET used = usage_counters.used + EXCLUDED.used
  RETURNING 1),
noticed AS (  -- once per period per threshold
  INSERT INTO usage_thresholds (tenant_id, feature, period_start, threshold)
  SELECT :tenant, :feature, per.ps, t.threshold FROM taken, go, per, unnest(CAST(:thresholds AS int[])) AS t(threshold)
  WHERE go.lim > 0
    AND CAST(taken.used - :quantity AS numeric) * 100 < CAST(go.lim AS numeric) * t.threshold
    AND CAST(go.lim AS numeric) * t.threshold <= CAST(taken.used AS numeric) * 100
  ON CONFLICT DO NOTHING RETURNING threshold),
announced AS (
  INSERT INTO outbox (event_id, type, subject, data, created_at)
  SELECT CAST(gen_random_uuid() AS text), :event_type, :tenant,
         json_build_object('tenant_id', CAST(:tenant AS text), 'feature', CAST(:feature AS text),
                           'threshold', noticed.threshold, 'used', taken.used, 'limit', go.lim,
                           'period_start', {iso('per.ps')}),
         now()
  FROM noticed, taken, go, per ORDER BY noticed.threshold
  RETURNING 1)
SELECT (SELECT answer FROM prior) AS prior, (SELECT answer FROM settled) AS answer
""")
