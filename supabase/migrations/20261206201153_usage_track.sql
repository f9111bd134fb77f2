-- What this migration does: usage-track (issue 27): billing.track_usage, a batch of up to 1,000 usage
-- events applied set-based and counted once per request id, with billing.write_usage_counters; the
-- setting billing_settings.usage_late_horizon (48 hours) for late events; plan features accept
-- client_metrics (the metrics signed-in users may report).
-- usage_track: drafted by `npm run db:diff -- usage_track` from the difference between the database the
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

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "usage_late_horizon" interval NOT NULL DEFAULT '48:00:00'::interval;

CREATE OR REPLACE FUNCTION billing.track_usage (
  p_events  jsonb,
  p_user_id uuid  DEFAULT NULL::uuid
)
  RETURNS TABLE (
    ordinal         integer,
    allowed         boolean,
    used            bigint,
    limit_amount    bigint,
    remaining       bigint,
    resets_at       timestamp with time zone,
    credits_charged bigint,
    duplicate       boolean,
    error           text
  )
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_horizon interval;
  v_n integer;
  -- Per event, by its position in the batch.
  e_org uuid[]; e_metric text[]; e_qty bigint[]; e_rid text[]; e_at timestamptz[]; e_err text[];
  e_tz text[]; e_features jsonb[]; e_units text[];
  e_first integer[];
  e_row uuid[]; e_fresh boolean[];
  e_allowed boolean[]; e_used bigint[]; e_limit bigint[]; e_remaining bigint[]; e_resets timestamptz[];
  e_credits bigint[]; e_dup boolean[]; e_credit_rid text[]; e_credit_units bigint[];
  -- Per event window: slot (i - 1) * 4 + j (j: minute, hour, day, month) holds the counter index.
  w_k integer[];
  -- Per counter, by its index in key order.
  c_org uuid[]; c_metric text[]; c_unit public.usage_window[]; c_start timestamptz[]; c_end timestamptz[];
  c_limit bigint[]; c_count bigint[]; c_saved bigint[]; c_inserted boolean[];
  v_ks integer[];
  v_ss integer[];
  v_fits boolean;
  v_k integer;
  v_best integer;
  v_event text;
  v_paid record;
  i integer;
  j integer;
begin
  if p_events is null or pg_catalog.jsonb_typeof(p_events) <> 'array' then
    raise exception 'track_usage: events must be a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  v_n := pg_catalog.jsonb_array_length(p_events);
  if v_n > 1000 then
    raise exception 'track_usage: at most 1,000 events per batch, got %', v_n using errcode = 'invalid_parameter_value';
  end if;
  if v_n = 0 then
    return;
  end if;
  if p_user_id is not null and v_n <> 1 then
    raise exception 'track_usage: a signed-in user reports one event at a time, got %', v_n
      using errcode = 'invalid_parameter_value';
  end if;
  select s.usage_late_horizon into v_horizon from public.billing_settings s where s.id;
  v_horizon := coalesce(v_horizon, interval '48 hours');

  -- 1. Parse and validate every event, with its organization's plan in effect (once per organization).
  with ev as (
    select x.ord::integer as ord, x.v,
           case when pg_catalog.jsonb_typeof(x.v) = 'object' then x.v end as o
    from pg_catalog.jsonb_array_elements(p_events) with ordinality as x(v, ord)
  ), parsed as (
    select ev.ord, ev.o,
           case when pg_catalog.jsonb_typeof(ev.o -> 'organization_id') = 'string'
                 and ev.o ->> 'organization_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                then (ev.o ->> 'organization_id')::uuid end as org,
           case when pg_catalog.jsonb_typeof(ev.o -> 'metric') = 'string'
                 and ev.o ->> 'metric' ~ '^[a-z][a-z0-9_]{0,62}$' and ev.o ->> 'metric' !~ '_per_'
                then ev.o ->> 'metric' end as metric,
           case when pg_catalog.jsonb_typeof(ev.o -> 'quantity') = 'number'
                 and (ev.o ->> 'quantity') ~ '^[0-9]{1,10}$' and (ev.o ->> 'quantity')::bigint between 1 and 2147483647
                then (ev.o ->> 'quantity')::bigint end as qty,
           case when pg_catalog.jsonb_typeof(ev.o -> 'request_id') = 'string'
                 and pg_catalog.length(ev.o ->> 'request_id') between 1 and 200
                then ev.o ->> 'request_id' end as rid,
           case when ev.o -> 'occurred_at' is null or pg_catalog.jsonb_typeof(ev.o -> 'occurred_at') = 'null' then v_now
                when pg_catalog.jsonb_typeof(ev.o -> 'occurred_at') = 'string'
                 and ev.o ->> 'occurred_at' ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'
                then (ev.o ->> 'occurred_at')::timestamptz end as at
    from ev
  ), orgs as (
    select o.org, p.organization_id is not null as known, p.timezone, p.features
    from (select distinct parsed.org from parsed where parsed.org is not null) o
    cross join lateral billing.effective_plan(o.org, v_now) p
  )
  select pg_catalog.array_agg(p.org order by p.ord),
         pg_catalog.array_agg(p.metric order by p.ord),
         pg_catalog.array_agg(p.qty order by p.ord),
         pg_catalog.array_agg(p.rid order by p.ord),
         pg_catalog.array_agg(least(p.at, v_now) order by p.ord),
         pg_catalog.array_agg(o.timezone order by p.ord),
         pg_catalog.array_agg(o.features order by p.ord),
         pg_catalog.array_agg(
           case when p.o is null then 'invalid_event'
                when p.org is null or not coalesce(o.known, false) then 'unknown_organization'
                when p.metric is null then 'invalid_metric'
                when p.qty is null then 'invalid_quantity'
                when p.rid is null then 'missing_request_id'
                when p.at is null then 'invalid_occurred_at'
                when p.at > v_now + interval '5 minutes' then 'event_in_future'
                when p.at < v_now - v_horizon then 'late_event_closed'
                when not (o.features ? (p.metric || '_per_minute') or o.features ? (p.metric || '_per_hour')
                          or o.features ? (p.metric || '_per_day') or o.features ? (p.metric || '_per_month'))
                  then 'unknown_metric'
           end order by p.ord)
  into e_org, e_metric, e_qty, e_rid, e_at, e_tz, e_features, e_err
  from parsed p
  left join orgs o on o.org = p.org;

  if p_user_id is not null then
    if e_org[1] is not null and not exists (
         select from public.organization_members m where m.organization_id = e_org[1] and m.user_id = p_user_id) then
      raise exception 'track_usage: the user is not a member of organization %', e_org[1]
        using errcode = 'insufficient_privilege';
    end if;
    if e_metric[1] is not null and e_features[1] is not null
       and not coalesce(e_features[1] -> 'client_metrics' ? e_metric[1], false) then
      raise exception 'track_usage: the plan does not let signed-in users report "%" (its client_metrics feature)', e_metric[1]
        using errcode = 'insufficient_privilege';
    end if;
  end if;

  -- Answers start empty; a request id repeated in the batch points at its first event.
  e_allowed := pg_catalog.array_fill(null::boolean, array[v_n]);
  e_used := pg_catalog.array_fill(null::bigint, array[v_n]);
  e_limit := e_used; e_remaining := e_used; e_credits := e_used; e_credit_units := e_used;
  e_resets := pg_catalog.array_fill(null::timestamptz, array[v_n]);
  e_credit_rid := pg_catalog.array_fill(null::text, array[v_n]);
  e_dup := pg_catalog.array_fill(false, array[v_n]);
  e_row := pg_catalog.array_fill(null::uuid, array[v_n]);
  e_fresh := pg_catalog.array_fill(false, array[v_n]);
  select pg_catalog.array_agg(f.first order by f.ord) into e_first
  from (
    select u.ord::integer as ord,
           case when u.err is null then pg_catalog.min(u.ord) over (partition by u.org, u.metric, u.rid, u.err is null) end::integer as first
    from unnest(e_org, e_metric, e_rid, e_err) with ordinality as u(org, metric, rid, err, ord)
  ) f;

  -- 2. Claim the request ids: a usage row per first event, inserted in key order. A concurrent
  -- copy of the batch waits here on the first key it shares, then finds the key taken.
  with ins as (
    insert into public.usage_metrics (organization_id, user_id, metric, amount, request_id, occurred_at)
    select u.org, p_user_id, u.metric, u.qty, u.rid, u.at
    from unnest(e_org, e_metric, e_qty, e_rid, e_at, e_err, e_first) with ordinality as u(org, metric, qty, rid, at, err, first, ord)
    where u.err is null and u.first = u.ord
    order by u.org, u.metric, u.rid
    on conflict (organization_id, metric, request_id) where request_id is not null do nothing
    returning usage_metrics.id, usage_metrics.organization_id, usage_metrics.metric, usage_metrics.request_id
  )
  select pg_catalog.array_agg(ins.id order by u.ord)
  into e_row
  from unnest(e_org, e_metric, e_rid, e_err, e_first) with ordinality as u(org, metric, rid, err, first, ord)
  left join ins on ins.organization_id = u.org and ins.metric = u.metric and ins.request_id = u.rid
                and u.err is null and u.first = u.ord;
  for i in 1 .. v_n loop
    e_fresh[i] := e_row[i] is not null;
  end loop;

  -- Keys already counted: their stored answer (a released one counts anew, in its own row).
  for v_paid in
    select u.ord::integer as ord, m.id, m.state, m.used, m.limit_amount, m.resets_at, c.charged
    from unnest(e_org, e_metric, e_rid, e_err, e_first, e_row) with ordinality as u(org, metric, rid, err, first, row_id, ord)
    join public.usage_metrics m on m.organization_id = u.org and m.metric = u.metric and m.request_id = u.rid
    left join public.credit_charges c on c.organization_id = m.organization_id and c.request_id = m.credit_request_id
    where u.err is null and u.first = u.ord and u.row_id is null
    order by u.org, u.metric, u.rid
    for update of m
  loop
    e_row[v_paid.ord] := v_paid.id;
    if v_paid.state <> 'released' then
      e_dup[v_paid.ord] := true;
      e_allowed[v_paid.ord] := true;
      e_used[v_paid.ord] := v_paid.used;
      e_limit[v_paid.ord] := v_paid.limit_amount;
      e_remaining[v_paid.ord] := case when v_paid.limit_amount < v_paid.used then 0 else v_paid.limit_amount - v_paid.used end;
      e_resets[v_paid.ord] := v_paid.resets_at;
      e_credits[v_paid.ord] := coalesce(v_paid.charged, 0);
    end if;
  end loop;

  -- 3. The windows of the events to decide, and their counters, locked in key order.
  with ev as (
    select u.ord::integer as ord, u.org, u.metric, u.at, u.tz, u.features
    from unnest(e_org, e_metric, e_at, e_tz, e_features, e_err, e_first, e_dup, e_row)
      with ordinality as u(org, metric, at, tz, features, err, first, dup, row_id, ord)
    where u.err is null and u.first = u.ord and not u.dup and u.row_id is not null
  ), w as (
    select ev.ord, wu.j::integer as j, ev.org, ev.metric, wu.unit,
           pg_catalog.date_trunc(wu.unit::text, ev.at at time zone ev.tz) at time zone ev.tz as starts,
           (pg_catalog.date_trunc(wu.unit::text, ev.at at time zone ev.tz) + ('1 ' || wu.unit::text)::interval)
             at time zone ev.tz as ends,
           (ev.features ->> (ev.metric || '_per_' || wu.unit::text))::bigint as lim
    from ev
    cross join lateral unnest('{minute,hour,day,month}'::public.usage_window[]) with ordinality as wu(unit, j)
    where ev.features ? (ev.metric || '_per_' || wu.unit::text)
  ), ranked as (
    select w.*, pg_catalog.dense_rank() over (order by w.org, w.metric, w.unit, w.starts)::integer as k from w
  ), slots as (
    select pg_catalog.array_agg(r.k order by r.ord, r.j) as ks, pg_catalog.array_agg((r.ord - 1) * 4 + r.j order by r.ord, r.j) as ss
    from ranked r
  ), per_event as (
    select r.ord, pg_catalog.array_agg(r.unit order by r.j)::text as units from ranked r group by r.ord
  ), counters as (
    select distinct on (r.k) r.k, r.org, r.metric, r.unit, r.starts, r.ends, r.lim from ranked r order by r.k
  ), locked as (
    insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
    select c.org, c.metric, c.unit, c.starts, 0, pg_catalog.now() from counters c order by c.k
    on conflict (organization_id, metric, window_unit, window_start) do update set count = q.count
    returning q.organization_id, q.metric, q.window_unit, q.window_start, q.count, q.xmax = 0 as inserted
  )
  select pg_catalog.array_agg(c.org order by c.k), pg_catalog.array_agg(c.metric order by c.k),
         pg_catalog.array_agg(c.unit order by c.k), pg_catalog.array_agg(c.starts order by c.k),
         pg_catalog.array_agg(c.ends order by c.k), pg_catalog.array_agg(c.lim order by c.k),
         pg_catalog.array_agg(l.count order by c.k), pg_catalog.array_agg(l.inserted order by c.k),
         (select s.ks from slots s), (select s.ss from slots s),
         (select pg_catalog.array_agg(pe.units order by g.i)
          from pg_catalog.generate_series(1, v_n) g(i) left join per_event pe on pe.ord = g.i)
  into c_org, c_metric, c_unit, c_start, c_end, c_limit, c_count, c_inserted, v_ks, v_ss, e_units
  from counters c
  join locked l on l.organization_id = c.org and l.metric = c.metric and l.window_unit = c.unit and l.window_start = c.starts;
  -- Each event window's counter index, by slot.
  w_k := pg_catalog.array_fill(null::integer, array[v_n * 4]);
  for i in 1 .. coalesce(pg_catalog.cardinality(v_ss), 0) loop
    w_k[v_ss[i]] := v_ks[i];
  end loop;
  c_saved := c_count;

  -- 4. Decide each event in order over the locked counts, as apply_usage_delta would.
  for i in 1 .. v_n loop
    continue when e_err[i] is not null or e_first[i] <> i or e_dup[i] or e_row[i] is null;
    v_fits := true;
    for j in 1 .. 4 loop
      v_k := w_k[(i - 1) * 4 + j];
      continue when v_k is null;
      if c_limit[v_k] is not null and c_count[v_k] + e_qty[i] > c_limit[v_k] then
        v_fits := false;
      end if;
    end loop;
    if v_fits then
      for j in 1 .. 4 loop
        v_k := w_k[(i - 1) * 4 + j];
        continue when v_k is null;
        c_count[v_k] := c_count[v_k] + e_qty[i];
      end loop;
      e_allowed[i] := true;
      e_credits[i] := 0;
    else
      e_allowed[i] := false;
      v_event := e_features[i] ->> (e_metric[i] || '_overage_event');
      if v_event is not null then
        -- Past the limit, paid in credits: billing.count_usage_past_limit reads and writes the
        -- counters itself, so the counts decided so far are written first.
        perform billing.write_usage_counters(c_org, c_metric, c_unit, c_start, c_end, c_limit, c_saved, c_count);
        c_saved := c_count;
        e_credit_rid[i] := billing.usage_credit_request_id(e_metric[i], e_rid[i], not e_fresh[i]);
        v_paid := billing.count_usage_past_limit(
          e_org[i], e_metric[i],
          e_units[i]::public.usage_window[],
          e_at[i], e_tz[i], e_features[i], e_qty[i], v_event, e_credit_rid[i]);
        if v_paid.allowed then
          for j in 1 .. 4 loop
            v_k := w_k[(i - 1) * 4 + j];
            continue when v_k is null;
            c_count[v_k] := c_count[v_k] + e_qty[i];
          end loop;
          c_saved := c_count;
          e_allowed[i] := true;
          e_used[i] := v_paid.used;
          e_limit[i] := v_paid.limit_amount;
          e_remaining[i] := v_paid.remaining;
          e_resets[i] := v_paid.resets_at;
          e_credits[i] := v_paid.credits;
          if v_paid.units > 0 then
            e_credit_units[i] := v_paid.units;
          else
            e_credit_rid[i] := null;
          end if;
          continue;
        end if;
        e_credit_rid[i] := null;
      end if;
    end if;
    -- The tightest window after the event (refused: as it stands): least remaining, unlimited
    -- windows last, the shortest window first on ties.
    v_best := null;
    for j in 1 .. 4 loop
      v_k := w_k[(i - 1) * 4 + j];
      continue when v_k is null;
      if v_best is null or (c_limit[v_k] is not null
           and (c_limit[v_best] is null or c_limit[v_k] - c_count[v_k] < c_limit[v_best] - c_count[v_best])) then
        v_best := v_k;
      end if;
    end loop;
    e_used[i] := c_count[v_best];
    e_limit[i] := c_limit[v_best];
    e_remaining[i] := greatest(c_limit[v_best] - c_count[v_best], 0);
    e_resets[i] := c_end[v_best];
  end loop;

  -- 5. Write: the counters, the rows of the counted events (their answer, for retries), and no row
  -- for a refused one (a released one stays released).
  perform billing.write_usage_counters(c_org, c_metric, c_unit, c_start, c_end, c_limit, c_saved, c_count);
  delete from public.usage_quotas q
  using unnest(c_org, c_metric, c_unit, c_start, c_count, c_inserted) as u(org, metric, unit, starts, count, inserted)
  where u.inserted and u.count = 0
    and q.organization_id = u.org and q.metric = u.metric and q.window_unit = u.unit and q.window_start = u.starts
    and q.count = 0;
  update public.usage_metrics m
  set amount = u.qty, state = 'counted', occurred_at = u.at, user_id = coalesce(p_user_id, m.user_id),
      window_units = u.units::public.usage_window[],
      used = u.used, limit_amount = u.lim, resets_at = u.resets,
      credit_request_id = coalesce(u.crid, m.credit_request_id),
      credit_units = case when u.crid is not null then u.cunits else m.credit_units end
  from unnest(e_row, e_qty, e_at, e_units, e_used, e_limit, e_resets, e_credit_rid, e_credit_units, e_allowed, e_dup)
    as u(row_id, qty, at, units, used, lim, resets, crid, cunits, allowed, dup)
  where m.id = u.row_id and u.allowed and not u.dup;
  delete from public.usage_metrics m
  using unnest(e_row, e_fresh, e_allowed) as u(row_id, fresh, allowed)
  where m.id = u.row_id and u.fresh and not u.allowed;

  return query
    select u.ord::integer,
           coalesce(e_allowed[u.first], case when u.err = 'unknown_metric' then false end),
           coalesce(e_used[u.first], case when u.err = 'unknown_metric' then 0::bigint end),
           coalesce(e_limit[u.first], case when u.err = 'unknown_metric' then 0::bigint end),
           coalesce(e_remaining[u.first], case when u.err = 'unknown_metric' then 0::bigint end),
           e_resets[u.first],
           coalesce(e_credits[u.first], case when u.err is null or u.err = 'unknown_metric' then 0::bigint end),
           u.err is null and (e_dup[u.first] or u.first <> u.ord),
           u.err
    from unnest(e_err, e_first) with ordinality as u(err, first, ord)
    order by u.ord;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.validate_plan_features (
  p_features jsonb
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_key text;
  v_value jsonb;
  v_window text;
begin
  if p_features is null or pg_catalog.jsonb_typeof(p_features) <> 'object' then
    raise exception 'plan features must be a JSON object'
      using errcode = 'invalid_parameter_value';
  end if;

  for v_key, v_value in select e.key, e.value from pg_catalog.jsonb_each(p_features) as e loop
    if v_key in ('credits_per_period', 'credits_low_threshold') then
      if not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a number of credits must be a non-negative integer, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key = 'ai_credit_event' then
      if pg_catalog.jsonb_typeof(v_value) <> 'string'
         or not exists (select from public.credit_events e where e.code = v_value #>> '{}') then
        raise exception 'plan features key "ai_credit_event": the credit event every AI call is charged to, per paisa of its cost, must name a credit event (public.credit_events), got %', v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key = 'client_metrics' then
      -- The metrics a signed-in user may report through usage-track (billing.track_usage).
      if pg_catalog.jsonb_typeof(v_value) <> 'array'
         or exists (select from pg_catalog.jsonb_array_elements(v_value) m
                    where pg_catalog.jsonb_typeof(m) <> 'string' or m #>> '{}' !~ '^[a-z][a-z0-9_]{0,62}$'
                       or m #>> '{}' ~ '_per_') then
        raise exception 'plan features key "client_metrics": the metrics signed-in users may report must be an array of metric names (lowercase snake_case, such as ["exports"]), got %', v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_overage_event$' then
      if v_key !~ '^[a-z][a-z0-9_]*_overage_event$' or pg_catalog.jsonb_typeof(v_value) <> 'string' then
        raise exception 'plan features key "%": an overage is <metric>_overage_event naming a credit event, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
      if not exists (select from public.credit_events e where e.code = v_value #>> '{}') then
        raise exception 'plan features key "%": no credit event "%" (public.credit_events)', v_key, v_value #>> '{}'
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_per_[^_]+$' then
      v_window := pg_catalog.substring(v_key, '_per_([^_]+)$');
      if v_key !~ '^[a-z][a-z0-9_]*_per_[a-z]+$' then
        raise exception 'plan features key "%": a metered limit is <metric>_per_<window> in lowercase snake_case', v_key
          using errcode = 'invalid_parameter_value';
      end if;
      if v_window not in ('minute', 'hour', 'day', 'month') then
        raise exception 'plan features key "%": unknown window "%" (use minute, hour, day or month)', v_key, v_window
          using errcode = 'invalid_parameter_value';
      end if;
      if pg_catalog.jsonb_typeof(v_value) <> 'null' and not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a metered limit must be a non-negative integer or null, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '^max_' then
      if v_key !~ '^max_[a-z][a-z0-9_]*$' then
        raise exception 'plan features key "%": a count limit is max_<thing> in lowercase snake_case', v_key
          using errcode = 'invalid_parameter_value';
      end if;
      if not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a count limit must be a non-negative integer, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    end if;
  end loop;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.write_usage_counters (
  p_organization_ids uuid[],
  p_metrics          text[],
  p_units            public.usage_window[],
  p_starts           timestamp with time zone[],
  p_ends             timestamp with time zone[],
  p_limits           bigint[],
  p_before           bigint[],
  p_after            bigint[]
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  update public.usage_quotas q
  set count = u.after, updated_at = pg_catalog.now()
  from unnest(p_organization_ids, p_metrics, p_units, p_starts, p_before, p_after)
    as u(organization_id, metric, unit, starts, before, after)
  where u.after <> u.before
    and q.organization_id = u.organization_id and q.metric = u.metric
    and q.window_unit = u.unit and q.window_start = u.starts;
  perform billing.queue_quota_alerts(u.organization_id, u.metric, u.unit, u.starts, u.ends, u.before, u.after, u.lim)
  from unnest(p_organization_ids, p_metrics, p_units, p_starts, p_ends, p_limits, p_before, p_after)
    as u(organization_id, metric, unit, starts, ends, lim, before, after)
  where u.lim > 0 and u.after > u.before
    and pg_catalog.floor(u.after * 100.0 / u.lim) > pg_catalog.floor(u.before * 100.0 / u.lim);
end;
$function$;

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_usage_late_horizon_range" CHECK (((usage_late_horizon >= '00:01:00'::interval) AND (usage_late_horizon <= '31 days'::interval)));

REVOKE ALL ON FUNCTION "billing"."track_usage"(jsonb, uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."track_usage"(jsonb, uuid) TO "service_role";

REVOKE ALL
  ON FUNCTION "billing"."write_usage_counters"(uuid[], text[], public.usage_window[], timestamp WITH time zone[], timestamp WITH time zone[], bigint[], bigint[], bigint[])
  FROM PUBLIC;
