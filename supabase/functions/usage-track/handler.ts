// POST /functions/v1/usage-track: the application reports what its users did, in batches.
// Body {"events": [{organization_id, metric, quantity, request_id, occurred_at?}, ...]} (at most
// 1,000 events; occurred_at an ISO 8601 time, now when absent). One SQL call
// (billing.track_usage) validates the batch, counts each event once by its request id and answers
// one result per event, in order:
//   200 {"results": [{allowed, used, limit_amount, remaining, resets_at, credits_charged, duplicate}
//                    | {error, ...}, ...]}
// as increment_usage answers one call (duplicate: the request id was counted before, by an earlier
// copy of this batch or earlier in it, and this is its first answer). An event that cannot be
// applied answers `error` for itself alone: invalid_event, unknown_organization, invalid_metric,
// unknown_metric (also allowed false, limit 0, as increment_usage denies a metric the plan does not
// meter), invalid_quantity, missing_request_id, invalid_occurred_at, event_in_future,
// late_event_closed (older than billing_settings.usage_late_horizon). The other events apply.
// Who may call: the secret key (sb_secret_ or the service_role key or JWT) reports anything; a
// signed-in user's JWT reports one event at a time, for an organization the user is a member of,
// of a metric the plan in effect lists in its `client_metrics` feature.
// Errors of the whole request, nothing written: 400 malformed_json | invalid_input (events is not
// an array) | too_many_events (over 1,000) | single_event_only (a user sent more than one) |
// invalid_occurred_at (a date that does not exist, such as February 30), 401 (no key or not the
// project's), 403 forbidden (a publishable or anon key; a user who is not a member, or a metric not
// in client_metrics), 413 body_too_large (over 1 MiB).
import { callerOf } from "../_shared/auth.ts";
import { sqlError, statement } from "../_shared/db.ts";
import { handle, HttpError, readJson } from "../_shared/http.ts";

const MAX_EVENTS = 1000;

export const handler = handle("usage-track", async (req) => {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const caller = await callerOf(req);
  if (caller.kind !== "secret" && caller.kind !== "user") {
    throw new HttpError(403, "forbidden", "usage-track needs the secret key, or a signed-in user's token");
  }
  const body = await readJson(req, 1024 * 1024);
  const events = body.events;
  if (!Array.isArray(events)) throw new HttpError(400, "invalid_input", "events must be an array of events");
  if (events.length > MAX_EVENTS) {
    throw new HttpError(400, "too_many_events", `at most ${MAX_EVENTS} events per request, got ${events.length}`);
  }
  const userId = caller.kind === "user" ? caller.claims.sub : null;
  if (userId !== null && events.length !== 1) {
    throw new HttpError(400, "single_event_only", "a signed-in user reports one event per request");
  }
  // The answer is built as JSON by Postgres (numbers stay numbers), fields that do not apply left out.
  let results: string;
  try {
    const [row] = await statement((sql) =>
      sql<{ results: string }[]>`select coalesce(pg_catalog.json_agg(pg_catalog.json_strip_nulls(pg_catalog.json_build_object(
          'allowed', t.allowed, 'used', t.used, 'limit_amount', t.limit_amount, 'remaining', t.remaining,
          'resets_at', t.resets_at, 'credits_charged', t.credits_charged,
          'duplicate', case when t.error is null then t.duplicate end, 'error', t.error)) order by t.ordinal), '[]')::text as results
        from billing.track_usage(${JSON.stringify(events)}::text::jsonb, ${userId}::uuid) t`
    );
    results = row.results;
  } catch (e) {
    throw sqlError(e, { "22008": [400, "invalid_occurred_at"] });
  }
  return new Response(`{"results":${results}}`, { status: 200, headers: { "content-type": "application/json" } });
});
