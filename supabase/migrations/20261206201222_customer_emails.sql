-- What this migration does: emails a customer is glad to get (issue 28).
--   - public.usage_metric_catalog: metric display names a DBA edits (quota emails say "AI tokens",
--     not groq_tokens), seeded for the gateway's metrics; billing.metric_display_name.
--   - Quota alerts count settled use: billing.apply_usage_delta takes p_settled (a reservation
--     passes 0 through billing.ai_count's p_is_reservation; billing.settle_usage passes the actual
--     amount), and billing.queue_quota_alerts queues one email for the highest threshold crossed,
--     none when that threshold or a higher one already alerted in the window.
--   - notifications.seq and an ordered claim: an organization's emails go out in the order of
--     their events (one waits while an earlier one of its organization is held).
--   - Billing email confirmation: organizations.billing_email_confirmed_at (rows already there
--     keep their address as confirmed: the column's default), billing.billing_email_confirmations
--     (token, expiry), a 'billing_email_confirmation' notification queued by
--     update_billing_profile when the address changes, public.confirm_billing_email(token), and
--     billing recipients that skip an unconfirmed address.
--   - billing.notification_context adds greeting_name, metric_name, receipt, confirmation and the
--     subscription's current_period_start.
-- customer_emails: drafted by `npm run db:diff -- customer_emails` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."ai_count"(uuid, uuid, text, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint);

DROP FUNCTION "billing"."apply_usage_delta"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, boolean);

CREATE TABLE "billing"."billing_email_confirmations" (
  "id"              uuid                     NOT NULL DEFAULT gen_random_uuid(),
  "organization_id" uuid                     NOT NULL,
  "email"           text                     NOT NULL,
  "token"           text                     NOT NULL DEFAULT (replace((gen_random_uuid())::text, '-'::text, ''::text) || replace((gen_random_uuid())::text, '-'::text, ''::text)),
  "created_at"      timestamp with time zone NOT NULL DEFAULT billing.now(),
  "expires_at"      timestamp with time zone NOT NULL DEFAULT (billing.now() + '3 days'::interval),
  "confirmed_at"    timestamp with time zone,
  CONSTRAINT "billing_email_confirmations_email_check" CHECK ((email ~ '^[^@[:space:]]+@[^@[:space:]]+$'::text)),
  CONSTRAINT "billing_email_confirmations_pkey" PRIMARY KEY (id),
  CONSTRAINT "billing_email_confirmations_token_key" UNIQUE (token)
);

ALTER TABLE "billing"."billing_email_confirmations"
  ENABLE ROW LEVEL SECURITY;

CREATE TABLE "public"."usage_metric_catalog" (
  "metric"       text                     NOT NULL,
  "display_name" text                     NOT NULL,
  "created_at"   timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "usage_metric_catalog_display_name_check" CHECK (((length(btrim(display_name)) >= 1) AND (length(btrim(display_name)) <= 60))),
  CONSTRAINT "usage_metric_catalog_metric_check" CHECK ((metric ~ '^[a-z][a-z0-9_]{0,62}$'::text)),
  CONSTRAINT "usage_metric_catalog_pkey" PRIMARY KEY (metric)
);

ALTER TABLE "public"."usage_metric_catalog"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."usage_metric_catalog" FROM "anon";

ALTER TABLE "public"."notifications"
  ADD COLUMN "seq" bigint GENERATED ALWAYS AS IDENTITY NOT NULL;

ALTER TABLE "public"."organizations"
  ADD COLUMN "billing_email_confirmed_at" timestamp WITH time zone DEFAULT now();

REVOKE ALL ON SEQUENCE "public"."notifications_seq_seq" FROM "anon";

REVOKE ALL ON SEQUENCE "public"."notifications_seq_seq" FROM "authenticated";



SET local check_function_bodies = off;

CREATE OR REPLACE FUNCTION billing.ai_count (
  p_organization_id uuid,
  p_user_id         uuid,
  p_request_id      text,
  p_metric          text,
  p_units           public.usage_window[],
  p_now             timestamp with time zone,
  p_timezone        text,
  p_features        jsonb,
  p_amount          bigint,
  p_is_reservation  boolean                            DEFAULT false,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  -- A reservation is a worst case, not use: it never alerts (its settlement does).
  select d.allowed, d.used, d.limit_amount, d.remaining, d.resets_at
  into allowed, used, limit_amount, remaining, resets_at
  from billing.apply_usage_delta(p_organization_id, p_metric, p_units, p_now, p_timezone, p_features, p_amount,
                                 p_settled => case when p_is_reservation then 0 end) d;
  if allowed then
    insert into public.usage_metrics (organization_id, user_id, metric, amount, request_id, window_units,
                                      occurred_at, used, limit_amount, resets_at)
    values (p_organization_id, p_user_id, p_metric, p_amount, p_request_id, p_units, p_now,
            ai_count.used, ai_count.limit_amount, ai_count.resets_at);
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_reserve (
  p_organization_id uuid,
  p_user_id         uuid,
  p_model           text,
  p_max_tokens      integer,
  p_prompt_tokens   integer,
  p_cache_key       text    DEFAULT NULL::text,
  p_stream          boolean DEFAULT false
)
  RETURNS billing.ai_reservation
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  c_default_max_tokens constant integer := 1024;
  c_reservation_ttl constant interval := interval '15 minutes';
  v_now timestamptz := billing.now();
  v_r billing.ai_reservation;
  v_plan record;
  v_features jsonb;
  v_windows record;
  v_month_end timestamptz;
  v_answer record;
  v_price public.ai_model_prices;
  v_event text;
  v_overage_event text;
  v_reserved_paise bigint;
  v_charge record;
begin
  perform billing.ai_check_reserve_arguments(p_organization_id, p_user_id, p_model, p_max_tokens, p_prompt_tokens,
                                             p_cache_key);
  -- Not a member (or no such organization): nothing is read or written for a stranger.
  if not exists (select 1 from public.organization_members m
                 where m.organization_id = p_organization_id and m.user_id = p_user_id) then
    v_r.allowed := false;
    v_r.denial := 'not_a_member';
    return v_r;
  end if;

  v_plan := billing.effective_plan(p_organization_id, v_now);
  v_features := coalesce(v_plan.features, '{}'::jsonb);
  v_windows := billing.ai_plan_windows(v_features, p_user_id);
  v_r.plan_code := v_plan.plan_code;
  v_event := v_features ->> 'ai_credit_event';
  v_overage_event := v_features ->> 'groq_tokens_overage_event';
  v_r.request_id := 'ai_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
  -- A metric the plan does not name has limit 0 and no window: retry when the month turns.
  v_month_end := (pg_catalog.date_trunc('month', v_now at time zone v_plan.timezone) + interval '1 month')
                 at time zone v_plan.timezone;

  begin
    v_r := billing.ai_take_rate(v_r, p_organization_id, v_windows.rate_metric, v_windows.rate_units,
                                v_windows.rate_features, v_now, v_plan.timezone, v_month_end);
    if v_r.denial is null and not coalesce(v_features -> 'ai_models' @> pg_catalog.to_jsonb(p_model), false) then
      v_r.denial := 'model_not_allowed';
    end if;
    if v_r.denial is null and p_cache_key is not null then
      v_r := billing.ai_cached_answer(v_r, p_organization_id, p_user_id, p_model, p_cache_key, p_stream, v_now);
      if v_r.allowed then
        return v_r;
      end if;
    end if;
    if v_r.denial is null and v_windows.prompt_units = '{}' then
      v_r := billing.ai_denied(v_r, 'prompts', 0, 0, null, v_month_end, v_now);
    elsif v_r.denial is null then
      v_answer := billing.ai_count(p_organization_id, p_user_id, v_r.request_id, 'ai_prompts', v_windows.prompt_units,
                                   v_now, v_plan.timezone, v_features, 1);
      if not v_answer.allowed then
        v_r := billing.ai_denied(v_r, 'prompts', v_answer.limit_amount, v_answer.remaining, v_answer.resets_at,
                                 v_month_end, v_now);
      end if;
    end if;
    if v_r.denial is null then
      v_price := billing.ai_model_price(p_model, v_now);
      v_r := billing.ai_cost_cap(v_r, p_organization_id, v_price, v_windows.spend_units, v_event, v_now,
                                 v_plan.timezone, v_features, v_month_end, p_prompt_tokens,
                                 coalesce(p_max_tokens, c_default_max_tokens));
    end if;
    if v_r.denial is null then
      v_r := billing.ai_reserve_tokens(v_r, p_organization_id, p_user_id, v_windows.token_units, v_now, v_plan.timezone,
                                       v_features, v_month_end, p_prompt_tokens, v_r.max_tokens,
                                       v_overage_event is not null);
      if v_r.denial = 'tokens' and v_overage_event is not null then
        -- Past the token quota, the call runs on credits: its tokens are not counted against the quota.
        v_r.denial := null;
        v_r.limit_amount := null;
        v_r.remaining := null;
        v_r.retry_after_seconds := null;
        if v_event is null then
          v_event := v_overage_event;
          v_r := billing.ai_cost_cap(v_r, p_organization_id, v_price, v_windows.spend_units, v_event, v_now,
                                     v_plan.timezone, v_features, v_month_end, p_prompt_tokens, v_r.max_tokens);
        end if;
        v_r.reserved_tokens := p_prompt_tokens + v_r.max_tokens;
      end if;
    end if;
    if v_r.denial is null and v_price.model is not null then
      -- Hold the reservation's cost against the spend cap and in credits, under the request id.
      v_reserved_paise := pg_catalog.ceil(billing.ai_cost_paise(v_price, p_prompt_tokens, v_r.max_tokens))::bigint;
      if v_windows.spend_units <> '{}' then
        v_answer := billing.ai_count(p_organization_id, p_user_id, v_r.request_id, 'ai_spend_paise',
                                     v_windows.spend_units, v_now, v_plan.timezone, v_features, v_reserved_paise,
                                     p_is_reservation => true);
        if not v_answer.allowed then
          v_r := billing.ai_denied(v_r, 'spend', v_answer.limit_amount, greatest(v_answer.remaining, 0),
                                   v_answer.resets_at, v_month_end, v_now);
        end if;
      end if;
      if v_r.denial is null and v_event is not null and v_reserved_paise > 0 then
        v_charge := billing.consume_credits(p_organization_id, v_event, v_reserved_paise, v_r.request_id);
        if not v_charge.charged then
          v_r.denial := 'credits';
          v_r.remaining := v_charge.balance;
        end if;
      end if;
    end if;
    if v_r.denial is not null then
      raise exception using errcode = 'SBAI0';
    end if;
    v_r.allowed := true;
  exception
    when sqlstate 'SBAI0' then
      -- Every count of this request is undone, the rate counter's too: report its window as it stands.
      v_r.allowed := false;
      v_r.max_tokens := null;
      v_r.reserved_tokens := null;
      if v_r.denial <> 'rate' and v_r.rate_remaining is not null then
        v_r.rate_remaining := v_r.rate_remaining + 1;
      end if;
  end;

  insert into public.ai_requests (organization_id, user_id, request_id, model, status, stream, max_tokens,
                                  reserved_tokens, error_code, cache_key, expires_at, completed_at,
                                  price_effective_from, reserved_paise)
  values (p_organization_id, p_user_id, v_r.request_id, p_model,
          case when v_r.allowed then 'pending' else 'denied' end::public.ai_request_status,
          coalesce(p_stream, false), v_r.max_tokens, coalesce(v_r.reserved_tokens, 0),
          case v_r.denial
            when 'rate' then 'rate_limited'
            when 'model_not_allowed' then 'model_not_allowed'
            when 'prompts' then 'prompt_quota_exceeded'
            when 'tokens' then 'token_quota_exceeded'
            when 'spend' then 'ai_spend_cap_reached'
            when 'credits' then 'insufficient_credits'
            when 'model_not_priced' then 'model_not_priced'
          end,
          p_cache_key,
          case when v_r.allowed then v_now + c_reservation_ttl end,
          case when not v_r.allowed then v_now end,
          case when v_r.allowed then v_price.effective_from end,
          case when v_r.allowed then v_reserved_paise end);
  return v_r;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_reserve_tokens (
  p_reservation     billing.ai_reservation,
  p_organization_id uuid,
  p_user_id         uuid,
  p_units           public.usage_window[],
  p_now             timestamp with time zone,
  p_timezone        text,
  p_features        jsonb,
  p_month_end       timestamp with time zone,
  p_prompt_tokens   integer,
  p_requested       integer,
  p_all_or_none     boolean                  DEFAULT false
)
  RETURNS billing.ai_reservation
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  c_min_answer_tokens constant integer := 16;
  v_answer record;
  v_available bigint;
begin
  if p_units = '{}' then
    p_reservation.token_limit := 0;
    p_reservation.token_remaining := 0;
    p_reservation.token_reset_seconds := billing.ai_seconds_until(p_month_end, p_now);
    return billing.ai_denied(p_reservation, 'tokens', 0, 0, null, p_month_end, p_now);
  end if;
  v_answer := billing.apply_usage_delta(p_organization_id, 'groq_tokens', p_units, p_now, p_timezone, p_features, 0);
  -- Unlimited (a null limit): no token window to report.
  if v_answer.limit_amount is not null then
    p_reservation.token_limit := v_answer.limit_amount;
    p_reservation.token_remaining := greatest(v_answer.remaining, 0);
    p_reservation.token_reset_seconds := billing.ai_seconds_until(v_answer.resets_at, p_now);
  end if;
  v_available := coalesce(v_answer.remaining - p_prompt_tokens, p_requested);
  if v_available < (case when p_all_or_none then p_requested else least(c_min_answer_tokens, p_requested) end) then
    return billing.ai_denied(p_reservation, 'tokens', v_answer.limit_amount, greatest(v_answer.remaining, 0),
                             v_answer.resets_at, p_month_end, p_now);
  end if;
  p_reservation.max_tokens := least(p_requested, v_available)::integer;
  p_reservation.reserved_tokens := p_prompt_tokens + p_reservation.max_tokens;
  v_answer := billing.ai_count(p_organization_id, p_user_id, p_reservation.request_id, 'groq_tokens', p_units, p_now,
                               p_timezone, p_features, p_reservation.reserved_tokens, p_is_reservation => true);
  if not v_answer.allowed then
    -- Cannot happen while the windows are locked; refuse rather than pass the limit.
    return billing.ai_denied(p_reservation, 'tokens', v_answer.limit_amount, greatest(v_answer.remaining, 0),
                             v_answer.resets_at, p_month_end, p_now);
  end if;
  if v_answer.limit_amount is not null then
    p_reservation.token_remaining := greatest(v_answer.remaining, 0);
  end if;
  return p_reservation;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.apply_usage_delta (
  p_organization_id uuid,
  p_metric          text,
  p_units           public.usage_window[],
  p_at              timestamp with time zone,
  p_timezone        text,
  p_features        jsonb,
  p_delta           bigint,
  p_past_limit      boolean                            DEFAULT false,
  p_settled         bigint                             DEFAULT NULL::bigint,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_local timestamp := p_at at time zone p_timezone;
  v_n integer := pg_catalog.cardinality(p_units);
  v_starts timestamptz[] := '{}'::timestamptz[];
  v_ends timestamptz[] := '{}'::timestamptz[];
  v_limits bigint[] := '{}'::bigint[];
  v_counts bigint[] := '{}'::bigint[];
  v_inserted boolean[] := '{}'::boolean[];
  v_count bigint;
  v_was_inserted boolean;
  v_done integer := 0;
  v_settled bigint;
begin
  for i in 1 .. v_n loop
    v_starts[i] := pg_catalog.date_trunc(p_units[i]::text, v_local) at time zone p_timezone;
    v_ends[i] := (pg_catalog.date_trunc(p_units[i]::text, v_local) + ('1 ' || p_units[i]::text)::interval)
                 at time zone p_timezone;
    -- A window the features do not name allows nothing (a null value is unlimited).
    v_limits[i] := case when p_features ? (p_metric || '_per_' || p_units[i]::text)
                        then (p_features ->> (p_metric || '_per_' || p_units[i]::text))::bigint
                        else 0 end;
  end loop;

  for i in 1 .. v_n loop
    exit when p_delta > 0 and p_delta > coalesce(v_limits[i], p_delta) and not (p_past_limit and p_units[i] <> 'minute');
    insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
    values (p_organization_id, p_metric, p_units[i], v_starts[i], greatest(p_delta, 0), pg_catalog.now())
    on conflict (organization_id, metric, window_unit, window_start) do update
      set count = greatest(q.count + p_delta, 0),
          updated_at = excluded.updated_at
      where p_delta <= 0 or v_limits[i] is null or q.count + p_delta <= v_limits[i]
         or (p_past_limit and p_units[i] <> 'minute')
    returning q.count, q.xmax = 0 into v_count, v_was_inserted;
    exit when not found;
    v_counts[i] := v_count;
    v_inserted[i] := v_was_inserted;
    v_done := i;
  end loop;
  allowed := v_done = v_n;

  if not allowed then
    -- Put back the windows that accepted: rows this call created go, the others get their count back.
    for i in 1 .. v_done loop
      if v_inserted[i] then
        delete from public.usage_quotas q
        where q.organization_id = p_organization_id and q.metric = p_metric
          and q.window_unit = p_units[i] and q.window_start = v_starts[i];
      else
        update public.usage_quotas q
        set count = q.count - p_delta
        where q.organization_id = p_organization_id and q.metric = p_metric
          and q.window_unit = p_units[i] and q.window_start = v_starts[i]
        returning q.count into v_count;
      end if;
      v_counts[i] := case when v_inserted[i] then 0 else v_count end;
    end loop;
    -- The windows not reached: their counts as they stand.
    for i in v_done + 1 .. v_n loop
      select q.count into v_count
      from public.usage_quotas q
      where q.organization_id = p_organization_id and q.metric = p_metric
        and q.window_unit = p_units[i] and q.window_start = v_starts[i];
      v_counts[i] := coalesce(v_count, 0);
      v_count := null;
    end loop;
  elsif coalesce(p_settled, p_delta) > 0 then
    -- Quota alerts on settled use: only a change across a whole percent of a limit can cross a
    -- threshold.
    v_settled := coalesce(p_settled, p_delta);
    for i in 1 .. v_n loop
      if v_limits[i] > 0
         and pg_catalog.floor(v_counts[i] * 100.0 / v_limits[i])
             > pg_catalog.floor((v_counts[i] - v_settled) * 100.0 / v_limits[i]) then
        perform billing.queue_quota_alerts(p_organization_id, p_metric, p_units[i], v_starts[i], v_ends[i],
                                           v_counts[i] - v_settled, v_counts[i], v_limits[i]);
      end if;
    end loop;
  end if;

  for i in 1 .. v_n loop
    if i = 1 or (v_limits[i] is not null and (limit_amount is null or v_limits[i] - v_counts[i] < remaining)) then
      used := v_counts[i];
      limit_amount := v_limits[i];
      remaining := v_limits[i] - v_counts[i];
      resets_at := v_ends[i];
    end if;
  end loop;
end;
$function$;


SET local check_function_bodies = off;

CREATE OR REPLACE FUNCTION billing.claim_notification_deliveries (
  p_limit integer DEFAULT 100
)
  RETURNS TABLE (
    id              uuid,
    organization_id uuid,
    subscription_id uuid,
    kind            public.notification_kind,
    payload         jsonb,
    dedupe_key      text,
    created_at      timestamp with time zone,
    attempts        integer,
    recipients      text[],
    context         jsonb
  )
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return query
  select c.id, c.organization_id, c.subscription_id, c.kind, c.payload, c.dedupe_key, c.created_at, c.attempts,
           billing.notification_recipients(c.id), billing.notification_context(c.id)
    from billing.claim_notifications(p_limit) c
    order by c.created_at, c.seq;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.claim_notifications (
  p_limit integer DEFAULT 100
)
  RETURNS SETOF public.notifications
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  update public.notifications n
  set failed_at = v_now, locked_until = null,
      last_error = left(pg_catalog.format('gave up after %s attempts%s', n.attempts,
                                          ': ' || n.last_error), 2000)
  where n.id in (
    select x.id from public.notifications x
    where x.sent_at is null and x.failed_at is null and x.attempts >= 10
      and (x.locked_until is null or x.locked_until <= v_now)
    limit p_limit
    for update skip locked);
  return query
    with claimed as (
      select n.id from public.notifications n
      where n.sent_at is null and n.failed_at is null and n.attempts < 10
        and (n.locked_until is null or n.locked_until <= v_now)
        -- An organization's emails go in the order of their events: one waits while an earlier
        -- one of its organization is held (another sender's lease, or a backoff).
        and not exists (
          select from public.notifications e
          where e.organization_id = n.organization_id and e.sent_at is null and e.failed_at is null
            and (e.created_at, e.seq) < (n.created_at, n.seq) and e.locked_until > v_now)
      order by n.created_at, n.seq
      limit p_limit
      for update skip locked
    )
    update public.notifications n
    set attempts = n.attempts + 1, locked_until = v_now + interval '5 minutes'
    from claimed c
    where n.id = c.id
    returning n.*;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.metric_display_name (
  p_metric text
)
  RETURNS text
  LANGUAGE sql
  STABLE
  SET search_path TO ''
  AS $function$
  select coalesce((select c.display_name from public.usage_metric_catalog c where c.metric = p_metric),
                  pg_catalog.replace(p_metric, '_', ' '));
$function$;

CREATE OR REPLACE FUNCTION billing.notification_audience (
  p_kind public.notification_kind
)
  RETURNS text
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
begin
  return case when p_kind in ('provider_action_failed', 'payment_disputed', 'subscription_disputed')
              then 'owners'
              when p_kind = 'billing_email_confirmation' then 'confirmation'
              else 'billing' end;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.notification_context (
  p_notification_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_note public.notifications;
  v_org public.organizations;
  v_sub public.subscriptions;
  v_plan public.billing_plans;
  v_old public.billing_plans;
  v_settings public.billing_settings;
  v_action billing.provider_actions;
  v_amount bigint;
  v_currency text;
  v_recipients text[];
  v_greeting text;
  v_receipt jsonb;
  v_confirmation billing.billing_email_confirmations;
begin
  select * into v_note from public.notifications n where n.id = p_notification_id;
  if not found then
    return null;
  end if;
  -- The greeting: the person's name when the email goes to one person whose name we know.
  v_recipients := billing.notification_recipients(p_notification_id);
  if pg_catalog.cardinality(v_recipients) = 1 then
    select nullif(btrim(coalesce(u.raw_user_meta_data ->> 'full_name', u.raw_user_meta_data ->> 'name')), '')
    into v_greeting
    from auth.users u where lower(btrim(u.email)) = v_recipients[1]
    order by u.created_at limit 1;
  end if;
  if v_note.kind = 'payment_captured' then
    -- The receipt: how it was paid and the period it paid for.
    select pg_catalog.jsonb_build_object(
             'method', pe.method, 'provider', pe.provider, 'provider_payment_id', pe.provider_payment_id)
    into v_receipt
    from public.invoices i join public.payment_events pe on pe.id = i.payment_event_id
    where i.id = billing.jsonb_uuid(v_note.payload ->> 'invoice_id');
  end if;
  if v_note.kind = 'billing_email_confirmation' then
    select * into v_confirmation from billing.billing_email_confirmations c
    where c.id = billing.jsonb_uuid(v_note.payload ->> 'confirmation_id');
  end if;
  select * into v_org from public.organizations o where o.id = v_note.organization_id;
  select * into v_sub from public.subscriptions s where s.id = v_note.subscription_id;
  select * into v_settings from public.billing_settings s limit 1;
  select * into v_plan from public.billing_plans p
  where p.id = coalesce(billing.jsonb_uuid(v_note.payload ->> 'new_plan_id'),
                        billing.jsonb_uuid(v_note.payload ->> 'plan_id'),
                        (select x.id from public.billing_plans x where x.code = v_note.payload ->> 'plan_code'),
                        v_sub.plan_id);
  select * into v_old from public.billing_plans p where p.id = billing.jsonb_uuid(v_note.payload ->> 'old_plan_id');
  if v_note.kind = 'provider_action_failed' and v_note.payload ->> 'kind' = 'refund' then
    select * into v_action from billing.provider_actions a
    where a.id = billing.jsonb_uuid(v_note.payload ->> 'provider_action_id');
  end if;

  if v_note.kind in ('payment_failed', 'payment_disputed', 'payment_captured') and v_note.payload ->> 'amount_cents' ~ '^[0-9]{1,15}$' then
    v_amount := (v_note.payload ->> 'amount_cents')::bigint;
    v_currency := coalesce(v_note.payload ->> 'currency', v_plan.currency, 'INR');
  elsif v_action.id is not null and v_action.payload ->> 'amount_paise' ~ '^[0-9]{1,15}$' then
    v_amount := (v_action.payload ->> 'amount_paise')::bigint;
    v_currency := coalesce(v_action.payload ->> 'currency', 'INR');
  elsif v_plan.id is not null then
    select q.amount_cents into v_amount
    from billing.order_tax_quote(v_org.id,
                                 billing.plan_price_for(v_org.id, v_plan, coalesce(v_sub.current_period_end, billing.now())),
                                 coalesce(v_settings.prices_include_tax, false)
                                 or v_sub.provider_subscription_id is not null, v_plan.currency) q;
    v_currency := v_plan.currency;
  end if;

  return pg_catalog.jsonb_build_object(
    'organization', pg_catalog.jsonb_build_object('id', v_org.id, 'name', v_org.name,
                                                  'billing_name', v_org.billing_name, 'timezone', v_org.timezone),
    'greeting_name', v_greeting,
    'metric_name', case when v_note.kind = 'quota_threshold'
                        then billing.metric_display_name(v_note.payload ->> 'metric') end,
    'receipt', v_receipt,
    'confirmation', case when v_confirmation.id is not null then pg_catalog.jsonb_build_object(
              'email', v_confirmation.email, 'token', v_confirmation.token,
              'expires_at', v_confirmation.expires_at) end,
    'seller_legal_name', v_settings.seller_legal_name,
    'app_success_url', v_settings.app_success_url,
    'plan', case when v_plan.id is not null then pg_catalog.jsonb_build_object(
              'id', v_plan.id, 'code', v_plan.code, 'name', v_plan.name, 'interval', v_plan.interval) end,
    'old_plan', case when v_old.id is not null then pg_catalog.jsonb_build_object(
              'code', v_old.code, 'name', v_old.name) end,
    'amount_cents', v_amount,
    'currency', v_currency,
    'refund', case when v_action.id is not null then pg_catalog.jsonb_build_object(
              'provider_payment_id', v_action.target ->> 'provider_payment_id',
              'amount_cents', v_amount, 'currency', v_currency) end,
    'subscription', case when v_sub.id is not null then pg_catalog.jsonb_build_object(
              'id', v_sub.id, 'status', v_sub.status, 'current_period_end', v_sub.current_period_end,
              'current_period_start', v_sub.current_period_start,
              'cancel_at_period_end', v_sub.cancel_at_period_end, 'provider', v_sub.provider,
              'provider_subscription_id', v_sub.provider_subscription_id) end);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.notification_recipients (
  p_notification_id uuid
)
  RETURNS text[]
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_note public.notifications;
  v_org public.organizations;
  v_roles public.member_role[];
begin
  select * into v_note from public.notifications n where n.id = p_notification_id;
  if not found then
    return null;
  end if;
  select * into v_org from public.organizations o where o.id = v_note.organization_id;
  if billing.notification_audience(v_note.kind) = 'confirmation' then
    return case when v_note.payload ->> 'email' ~ '^[^@[:space:]]+@[^@[:space:]]+$'
                then array[lower(btrim(v_note.payload ->> 'email'))] else '{}'::text[] end;
  elsif billing.notification_audience(v_note.kind) = 'billing' then
    if nullif(btrim(v_org.billing_email), '') is not null and v_org.billing_email_confirmed_at is not null then
      return array[lower(btrim(v_org.billing_email))];
    end if;
    v_roles := array['owner', 'admin']::public.member_role[];
  else
    v_roles := array['owner']::public.member_role[];
  end if;
  return coalesce((
    select array_agg(distinct lower(btrim(u.email)) order by lower(btrim(u.email)))
    from public.organization_members m
    join auth.users u on u.id = m.user_id
    where m.organization_id = v_note.organization_id and m.role = any (v_roles)
      and nullif(btrim(u.email), '') is not null), '{}'::text[]);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.queue_quota_alerts (
  p_organization_id uuid,
  p_metric          text,
  p_unit            public.usage_window,
  p_window_start    timestamp with time zone,
  p_resets_at       timestamp with time zone,
  p_before          bigint,
  p_after           bigint,
  p_limit           bigint
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_n integer;
  v_plan_code text;
begin
  if p_metric ~ '^ai_requests_u_[0-9a-f]{32}$' or p_limit is null or p_limit <= 0
     or not exists (select 1 from public.billing_settings s, pg_catalog.unnest(s.quota_alert_thresholds) as t(threshold)
                    where s.id and p_unit = any (s.quota_alert_windows)
                      and p_before::numeric * 100 < t.threshold::numeric * p_limit
                      and p_after::numeric * 100 >= t.threshold::numeric * p_limit) then
    return 0;
  end if;
  -- The plan whose limit was reached, so the email can name it.
  v_plan_code := (billing.effective_plan(p_organization_id, billing.now())).plan_code;
  insert into public.notifications (organization_id, kind, payload, dedupe_key)
  select p_organization_id, 'quota_threshold',
         pg_catalog.jsonb_build_object(
           'metric', p_metric, 'window', p_unit, 'threshold', t.threshold, 'used', p_after, 'limit', p_limit,
           'window_start', p_window_start, 'resets_at', p_resets_at, 'plan_code', v_plan_code),
         pg_catalog.format('quota_threshold:%s:%s:%s:%s:%s', p_organization_id, p_metric, p_unit,
                           extract(epoch from p_window_start)::bigint, t.threshold)
  from public.billing_settings s
  cross join lateral pg_catalog.unnest(s.quota_alert_thresholds) as t(threshold)
  where s.id and p_unit = any (s.quota_alert_windows)
    and p_before::numeric * 100 < t.threshold::numeric * p_limit
    and p_after::numeric * 100 >= t.threshold::numeric * p_limit
    and not exists (
      select from public.notifications n
      where n.organization_id = p_organization_id and n.kind = 'quota_threshold'
        and n.payload ->> 'metric' = p_metric and n.payload ->> 'window' = p_unit::text
        and (n.payload ->> 'window_start')::timestamptz = p_window_start
        and (n.payload ->> 'threshold')::numeric >= t.threshold)
  order by t.threshold desc
  limit 1
  on conflict (dedupe_key) do nothing;
  get diagnostics v_n = row_count;
  return v_n;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.settle_usage (
  p_organization_id uuid,
  p_request_id      text,
  p_actual_amount   bigint,
  p_metric          text                               DEFAULT NULL::text,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_metric record;
  v_plan record;
  v_answer record;
  v_matches integer;
  v_units bigint;
  v_charge record;
begin
  if p_actual_amount is null or p_actual_amount < 0 then
    raise exception 'settle_usage: actual amount must be zero or more, got %', coalesce(p_actual_amount::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  select count(*) into v_matches
  from public.usage_metrics m
  where m.organization_id = p_organization_id and m.request_id = p_request_id
    and (p_metric is null or m.metric = p_metric);
  if v_matches = 0 then
    raise exception 'settle_usage: no counted request % for organization %', p_request_id, p_organization_id
      using errcode = 'no_data_found';
  elsif v_matches > 1 then
    raise exception 'settle_usage: request % was counted under several metrics: name one', p_request_id
      using errcode = 'invalid_parameter_value';
  end if;

  select m.* into v_metric
  from public.usage_metrics m
  where m.organization_id = p_organization_id and m.request_id = p_request_id
    and (p_metric is null or m.metric = p_metric)
  for update;
  if v_metric.state = 'released' then
    raise exception 'settle_usage: request % was released', p_request_id
      using errcode = 'invalid_parameter_value';
  end if;

  v_plan := billing.effective_plan(p_organization_id, billing.now());
  v_answer := billing.apply_usage_delta(p_organization_id, v_metric.metric, v_metric.window_units,
                                        v_metric.occurred_at, v_plan.timezone, v_plan.features,
                                        p_actual_amount - v_metric.amount,
                                        p_settled => case when v_metric.state = 'settled' then 0 else p_actual_amount end);
  if v_answer.allowed then
    v_units := v_metric.credit_units;
    if v_units > 0 and p_actual_amount < v_metric.amount then
      v_units := greatest(v_units - (v_metric.amount - p_actual_amount), 0);
      select c.credits, c.quantity into v_charge from public.credit_charges c
      where c.organization_id = p_organization_id and c.request_id = v_metric.credit_request_id;
      perform billing.settle_credits(p_organization_id, v_metric.credit_request_id,
                                     pg_catalog.ceil(v_charge.credits::numeric * v_units / v_charge.quantity)::bigint);
    end if;
    update public.usage_metrics m
    set amount = p_actual_amount, state = 'settled', credit_units = v_units,
        used = v_answer.used, limit_amount = v_answer.limit_amount, resets_at = v_answer.resets_at
    where m.id = v_metric.id;
  end if;
  allowed := v_answer.allowed;
  used := v_answer.used;
  limit_amount := v_answer.limit_amount;
  remaining := v_answer.remaining;
  resets_at := v_answer.resets_at;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.update_billing_profile (
  p_organization_id uuid,
  p_billing_name    text,
  p_billing_email   text DEFAULT NULL::text,
  p_gstin           text DEFAULT NULL::text,
  p_address_line1   text DEFAULT NULL::text,
  p_address_line2   text DEFAULT NULL::text,
  p_city            text DEFAULT NULL::text,
  p_state_code      text DEFAULT NULL::text,
  p_postal_code     text DEFAULT NULL::text,
  p_country         text DEFAULT 'IN'::text
)
  RETURNS public.organizations
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_gstin text := nullif(pg_catalog.upper(pg_catalog.regexp_replace(coalesce(p_gstin, ''), '\s', '', 'g')), '');
  v_country text := pg_catalog.upper(btrim(coalesce(p_country, 'IN')));
  v_state_code text := nullif(btrim(coalesce(p_state_code, '')), '');
  v_postal_code text := nullif(btrim(coalesce(p_postal_code, '')), '');
  v_problem text;
  v_result public.organizations%rowtype;
  v_old_email text;
  v_confirmation_id uuid;
begin
  perform billing.require_role(p_organization_id, billing.managers(), 'update its billing profile');

  if p_billing_name is null or length(btrim(p_billing_name)) not between 1 and 200 then
    raise exception 'billing name (legal name) must be 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  if nullif(btrim(p_billing_email), '') !~ '^[^@[:space:]]+@[^@[:space:]]+$' then
    raise exception 'billing email "%" is not an email address', p_billing_email using errcode = 'invalid_parameter_value';
  end if;
  if v_country !~ '^[A-Z]{2}$' then
    raise exception 'country must be a two-letter ISO 3166 code such as IN, got "%"', p_country
      using errcode = 'invalid_parameter_value';
  end if;

  if v_country <> 'IN' then
    if v_gstin is not null or v_state_code is not null then
      raise exception 'a buyer outside India (country %) has no GSTIN or GST state code', v_country
        using errcode = 'invalid_parameter_value';
    end if;
  else
    if v_gstin is not null then
      v_problem := billing.gstin_problem(v_gstin);
      if v_problem is not null then
        raise exception '%', v_problem using errcode = 'invalid_parameter_value';
      end if;
      if v_state_code is not null and v_state_code <> pg_catalog.left(v_gstin, 2) then
        raise exception 'state code % does not match the GSTIN''s state code %', v_state_code, pg_catalog.left(v_gstin, 2)
          using errcode = 'invalid_parameter_value';
      end if;
      v_state_code := pg_catalog.left(v_gstin, 2);
    elsif v_state_code is not null and billing.gst_state_name(v_state_code) is null then
      raise exception 'state code "%" is not a GST state code (01-38, 97 or 99)', v_state_code
        using errcode = 'invalid_parameter_value';
    end if;
    if v_postal_code !~ '^[1-9][0-9]{5}$' then
      raise exception 'postal code "%" is not an Indian PIN code (6 digits)', v_postal_code
        using errcode = 'invalid_parameter_value';
    end if;
  end if;
  if v_postal_code !~ '^[A-Za-z0-9][A-Za-z0-9 -]{1,14}$' then
    raise exception 'postal code "%" must be 2 to 15 letters, digits, spaces or hyphens', v_postal_code
      using errcode = 'invalid_parameter_value';
  end if;
  if length(btrim(p_address_line1)) > 200 or length(btrim(p_address_line2)) > 200 then
    raise exception 'address lines must be at most 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  if length(btrim(p_city)) > 100 then
    raise exception 'city must be at most 100 characters' using errcode = 'invalid_parameter_value';
  end if;

  select o.billing_email into v_old_email from public.organizations o where o.id = p_organization_id;
  update public.organizations o
  set billing_name = btrim(p_billing_name),
      billing_email = nullif(btrim(p_billing_email), ''),
      -- A new address is not trusted until its confirmation link is followed.
      billing_email_confirmed_at = case
        when lower(o.billing_email) is not distinct from lower(nullif(btrim(p_billing_email), ''))
        then o.billing_email_confirmed_at end,
      gstin = v_gstin,
      state_code = v_state_code,
      billing_address_line1 = nullif(btrim(p_address_line1), ''),
      billing_address_line2 = nullif(btrim(p_address_line2), ''),
      billing_city = nullif(btrim(p_city), ''),
      billing_postal_code = v_postal_code,
      billing_country = v_country
  where o.id = p_organization_id
  returning * into v_result;
  if not found then
    raise exception 'organization % does not exist', p_organization_id using errcode = 'no_data_found';
  end if;
  if v_result.billing_email is not null and v_result.billing_email_confirmed_at is null
     and lower(v_result.billing_email) is distinct from lower(v_old_email) then
    -- The confirmation link goes to the new address only (billing.notification_recipients).
    insert into billing.billing_email_confirmations (organization_id, email)
    values (p_organization_id, v_result.billing_email)
    returning id into v_confirmation_id;
    insert into public.notifications (organization_id, kind, payload, dedupe_key)
    values (p_organization_id, 'billing_email_confirmation',
            pg_catalog.jsonb_build_object('email', v_result.billing_email, 'confirmation_id', v_confirmation_id),
            pg_catalog.format('billing_email_confirmation:%s', v_confirmation_id));
  end if;
  return v_result;
end;
$function$;

CREATE OR REPLACE FUNCTION public.confirm_billing_email (
  p_token text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_c billing.billing_email_confirmations;
  v_org public.organizations;
begin
  select * into v_c from billing.billing_email_confirmations c where c.token = btrim(coalesce(p_token, '')) for update;
  if not found then
    raise exception 'this confirmation link is not valid' using errcode = 'no_data_found';
  end if;
  select * into v_org from public.organizations o where o.id = v_c.organization_id for update;
  if lower(v_org.billing_email) is distinct from lower(v_c.email) then
    raise exception 'superseded: the billing email was changed after this link was sent; use the newest link'
      using errcode = 'invalid_parameter_value';
  end if;
  if v_c.confirmed_at is null then
    if v_c.expires_at <= billing.now() then
      raise exception 'expired: this confirmation link expired at %; save the billing email again for a new link',
        v_c.expires_at using errcode = 'invalid_parameter_value';
    end if;
    update billing.billing_email_confirmations c set confirmed_at = billing.now() where c.id = v_c.id
    returning * into v_c;
    update public.organizations o set billing_email_confirmed_at = v_c.confirmed_at
    where o.id = v_org.id and o.billing_email_confirmed_at is null;
  end if;
  return pg_catalog.jsonb_build_object('organization_id', v_org.id, 'billing_email', v_org.billing_email,
                                       'confirmed_at', v_c.confirmed_at);
end;
$function$;

ALTER TABLE "billing"."billing_email_confirmations"
  ADD CONSTRAINT "billing_email_confirmations_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

CREATE INDEX billing_email_confirmations_organization_id_idx ON billing.billing_email_confirmations USING btree (organization_id);

-- Data a diff cannot know: the display names of the metrics the gateway counts.
insert into public.usage_metric_catalog (metric, display_name) values
  ('groq_tokens', 'AI tokens'),
  ('ai_prompts', 'AI prompts'),
  ('ai_requests', 'AI requests'),
  ('ai_spend_paise', 'AI spend')
on conflict (metric) do nothing;

CREATE POLICY "Signed-in users can read metric display names" ON "public"."usage_metric_catalog"
  FOR SELECT
  TO "authenticated"
  USING (true);

COMMENT ON FUNCTION "public"."confirm_billing_email"(text) IS 'Confirms a billing email with its link''s token; until then billing emails go to owners and admins.';

COMMENT ON TABLE "billing"."billing_email_confirmations" IS 'Confirmation links of billing emails: token, address, expiry; private (service_role).';

COMMENT ON TABLE "public"."usage_metric_catalog" IS 'Display names of usage metrics for emails and usage pages; a DBA edits it.';

REVOKE ALL ON FUNCTION "billing"."ai_count"(uuid, uuid, text, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, boolean) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_count"(uuid, uuid, text, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, boolean) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."apply_usage_delta"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, boolean, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."apply_usage_delta"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, boolean, bigint) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."metric_display_name"(text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."metric_display_name"(text) TO "service_role";

REVOKE ALL ON FUNCTION "public"."confirm_billing_email"(text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "public"."confirm_billing_email"(text) TO "anon", "authenticated";

REVOKE ALL ON FUNCTION "public"."confirm_billing_email"(text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."confirm_billing_email"(text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."confirm_billing_email"(text) TO "service_role";

REVOKE ALL ON SEQUENCE "public"."notifications_seq_seq" FROM "postgres";

GRANT SELECT, UPDATE, USAGE ON SEQUENCE "public"."notifications_seq_seq" TO "postgres";

REVOKE ALL ON SEQUENCE "public"."notifications_seq_seq" FROM "service_role";

GRANT SELECT, UPDATE, USAGE ON SEQUENCE "public"."notifications_seq_seq" TO "service_role";

GRANT DELETE, INSERT, SELECT, UPDATE ON TABLE "billing"."billing_email_confirmations" TO "service_role";

REVOKE ALL ON TABLE "public"."usage_metric_catalog" FROM "authenticated";

GRANT SELECT ON TABLE "public"."usage_metric_catalog" TO "authenticated";

REVOKE ALL ON TABLE "public"."usage_metric_catalog" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."usage_metric_catalog" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."usage_metric_catalog" TO "service_role";
