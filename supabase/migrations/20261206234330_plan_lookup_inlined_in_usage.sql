-- What this migration does: increment_usage's one statement, track_usage's batch and the
-- monitoring view of quotas read the plan in effect through billing.effective_plan_rows, which
-- the planner inlines into their queries (one set-based lookup for a whole usage-track batch)
-- instead of calling the plpgsql billing.effective_plan once per organization. Same rules, same answers.
-- plan_lookup_inlined_in_usage: drafted by `npm run db:diff -- plan_lookup_inlined_in_usage` from the difference between the database the
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

DROP VIEW "billing"."quota_pressure";

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
  c_limit bigint[]; c_count bigint[]; c_saved bigint[]; c_inserted boolean[]; c_delta bigint[];
  v_written boolean;
  v_ks integer[];
  v_ss integer[];
  v_fits boolean;
  v_k integer;
  v_best integer;
  v_event text;
  v_paid record;
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
    -- One plan lookup for every organization of the batch, in this query (the rules inlined).
    cross join lateral billing.effective_plan_rows(o.org, v_now) p
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

  -- 2. Claim the request ids: a usage row per first event whose key no month has, inserted in the
  -- current month in key order. A concurrent copy of the batch waits here on the first key it
  -- shares, then finds the key taken; near a month boundary the keys are locked first (a copy
  -- claiming in the other month waits; see the table).
  perform billing.usage_request_locks(v_now, e_org, e_rid, e_metric);
  with ins as (
    insert into public.usage_metrics (organization_id, user_id, metric, amount, request_id, occurred_at, claimed_month)
    select u.org, p_user_id, u.metric, u.qty, u.rid, u.at, pg_catalog.date_trunc('month', v_now, 'UTC')
    from unnest(e_org, e_metric, e_qty, e_rid, e_at, e_err, e_first) with ordinality as u(org, metric, qty, rid, at, err, first, ord)
    where u.err is null and u.first = u.ord
      and not exists (select from public.usage_metrics m
                      where m.organization_id = u.org and m.request_id = u.rid and m.metric = u.metric)
    order by u.org, u.metric, u.rid
    on conflict (organization_id, request_id, metric, claimed_month) do nothing
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
  )
  select pg_catalog.array_agg(c.org order by c.k), pg_catalog.array_agg(c.metric order by c.k),
         pg_catalog.array_agg(c.unit order by c.k), pg_catalog.array_agg(c.starts order by c.k),
         pg_catalog.array_agg(c.ends order by c.k), pg_catalog.array_agg(c.lim order by c.k),
         (select s.ks from slots s), (select s.ss from slots s),
         (select pg_catalog.array_agg(pe.units order by g.i)
          from pg_catalog.generate_series(1, v_n) g(i) left join per_event pe on pe.ord = g.i)
  into c_org, c_metric, c_unit, c_start, c_end, c_limit, v_ks, v_ss, e_units
  from counters c;
  -- Each event window's counter index, by slot.
  w_k := pg_catalog.array_fill(null::integer, array[v_n * 4]);
  for i in 1 .. coalesce(pg_catalog.cardinality(v_ss), 0) loop
    w_k[v_ss[i]] := v_ks[i];
  end loop;
  c_delta := pg_catalog.array_fill(0::bigint, array[coalesce(pg_catalog.cardinality(c_org), 0)]);
  for i in 1 .. v_n loop
    continue when e_err[i] is not null or e_first[i] <> i or e_dup[i] or e_row[i] is null;
    for j in 1 .. 4 loop
      v_k := w_k[(i - 1) * 4 + j];
      continue when v_k is null;
      c_delta[v_k] := c_delta[v_k] + e_qty[i];
    end loop;
  end loop;

  -- The usual case first: every event fits. Each counter gets the batch's total in one upsert, in
  -- key order (which also locks it); if any counter passes its limit, the subtransaction is undone
  -- and the events are decided one by one below. The counters' answers are matched back by key
  -- through a JSON object, not a join: the planner cannot size a RETURNING list.
  v_written := false;
  if c_org is not null then
    begin
      with up as (
        insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
        select u.org, u.metric, u.unit, u.starts, u.delta, pg_catalog.now()
        from unnest(c_org, c_metric, c_unit, c_start, c_delta) with ordinality as u(org, metric, unit, starts, delta, k)
        order by u.k
        on conflict (organization_id, metric, window_unit, window_start) do update
          set count = q.count + excluded.count, updated_at = excluded.updated_at
        returning q.organization_id::text || q.metric || q.window_unit::text || q.window_start::text as key, q.count
      ), answers as (
        select pg_catalog.jsonb_object_agg(up.key, up.count) as m from up
      )
      select pg_catalog.array_agg((a.m ->> (u.org::text || u.metric || u.unit::text || u.starts::text))::bigint - u.delta
                                  order by u.k)
      into c_count
      from answers a, unnest(c_org, c_metric, c_unit, c_start, c_delta) with ordinality as u(org, metric, unit, starts, delta, k);
      if exists (select from unnest(c_count, c_delta, c_limit) as u(before, delta, lim) where u.before + u.delta > u.lim) then
        raise exception 'a counter passes its limit' using errcode = 'SB002';
      end if;
      v_written := true;
    exception when sqlstate 'SB002' then
      v_written := false;
    end;
  end if;
  c_inserted := pg_catalog.array_fill(false, array[coalesce(pg_catalog.cardinality(c_org), 0)]);
  if not v_written then
    -- Lock every counter in key order (a row this batch creates starts at 0), and read its count.
    with locked as (
      insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
      select u.org, u.metric, u.unit, u.starts, 0, pg_catalog.now()
      from unnest(c_org, c_metric, c_unit, c_start) with ordinality as u(org, metric, unit, starts, k)
      order by u.k
      on conflict (organization_id, metric, window_unit, window_start) do update set count = q.count
      returning q.organization_id::text || q.metric || q.window_unit::text || q.window_start::text as key,
                pg_catalog.jsonb_build_array(q.count, q.xmax = 0) as answer
    ), answers as (
      select pg_catalog.jsonb_object_agg(l.key, l.answer) as m from locked l
    )
    select pg_catalog.array_agg((a.m -> (u.org::text || u.metric || u.unit::text || u.starts::text) ->> 0)::bigint order by u.k),
           pg_catalog.array_agg((a.m -> (u.org::text || u.metric || u.unit::text || u.starts::text) ->> 1)::boolean order by u.k)
    into c_count, c_inserted
    from answers a, unnest(c_org, c_metric, c_unit, c_start) with ordinality as u(org, metric, unit, starts, k);
  end if;
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
  perform billing.write_usage_counters(c_org, c_metric, c_unit, c_start, c_end, c_limit, c_saved, c_count,
                                       p_write => not v_written);
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
  from unnest(e_org, e_metric, e_rid, e_row, e_qty, e_at, e_units, e_used, e_limit, e_resets, e_credit_rid,
              e_credit_units, e_allowed, e_dup)
    as u(org, metric, rid, row_id, qty, at, units, used, lim, resets, crid, cunits, allowed, dup)
  where m.organization_id = u.org and m.request_id = u.rid and m.metric = u.metric
    and u.row_id is not null and u.allowed and not u.dup;
  delete from public.usage_metrics m
  using unnest(e_org, e_metric, e_rid, e_row, e_fresh, e_allowed) as u(org, metric, rid, row_id, fresh, allowed)
  where m.organization_id = u.org and m.request_id = u.rid and m.metric = u.metric
    and u.row_id is not null and u.fresh and not u.allowed;

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

CREATE OR REPLACE FUNCTION public.increment_usage (
  p_organization_id uuid,
  p_metric          text,
  p_amount          integer                            DEFAULT 1,
  p_request_id      text                               DEFAULT NULL::text,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone,
  OUT               credits_charged bigint
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_known boolean;
  v_tz text;
  v_features jsonb;
  v_stored boolean;
  v_released boolean;
  v_credit_request_id text;
  v_windows integer;
  v_units public.usage_window[];
  v_starts timestamptz[];
  v_ends timestamptz[];
  v_limits bigint[];
  v_counts bigint[];
  v_inserted boolean[];
  v_written boolean;
  v_stored_used bigint;
  v_stored_limit bigint;
  v_stored_resets timestamptz;
  v_general record;
begin
  credits_charged := 0;
  if p_amount is null or p_amount <= 0 then
    raise exception 'increment_usage: amount must be a positive integer, got %', coalesce(p_amount::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_metric is null or p_metric !~ '^[a-z][a-z0-9_]{0,62}$' or p_metric ~ '_per_' then
    raise exception 'increment_usage: metric name "%" is not valid: use lowercase snake_case such as ai_prompts (the plan key is <metric>_per_<window>)', p_metric
      using errcode = 'invalid_parameter_value';
  end if;
  if p_request_id is not null and (length(p_request_id) = 0 or length(p_request_id) > 200) then
    raise exception 'increment_usage: request id must be 1 to 200 characters'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_request_id is not null then
    -- Near a month boundary: a copy of the request claiming in the other month waits (see the table).
    perform billing.usage_request_locks(v_now, array[p_organization_id], array[p_request_id], array[p_metric]);
  end if;

  with p as materialized (
    -- The plan's rules inlined into this statement (billing.effective_plan_rows, one lookup).
    select e.organization_id, e.timezone, e.features from billing.effective_plan_rows(p_organization_id, v_now) e
  ), r as materialized (
    -- In every month (one row per request id across months: see the table).
    select m.state = 'released' as released, m.used, m.limit_amount, m.resets_at, m.credit_request_id
    from public.usage_metrics m
    where p_request_id is not null
      and m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = p_metric
  ), w as materialized (
    select w.unit, w.starts, w.ends, w.lim
    from p cross join lateral billing.usage_windows(p_metric, null, v_now, p.timezone, p.features) w
    where p.organization_id is not null and not exists (select from r)
  ), up as (
    insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
    select p_organization_id, p_metric, w.unit, w.starts, p_amount, pg_catalog.now()
    from w
    where w.lim is null or p_amount <= w.lim
    order by w.unit
    on conflict (organization_id, metric, window_unit, window_start) do update
      set count = q.count + excluded.count, updated_at = excluded.updated_at
      where q.count + excluded.count <= coalesce((select w.lim from w where w.unit = excluded.window_unit),
                                                 q.count + excluded.count)
    returning q.window_unit, q.count, q.xmax = 0 as inserted
  ), ans as (
    -- The tightest window: least remaining, unlimited windows last, the shortest first on ties.
    select up.count as used, w.lim, w.ends
    from up join w on w.unit = up.window_unit
    where (select count(*) from up) = (select count(*) from w)
    order by w.lim - up.count nulls last, w.unit
    limit 1
  ), ins as (
    insert into public.usage_metrics
      (id, organization_id, user_id, metric, amount, request_id, metadata, occurred_at, created_at, window_units,
       state, used, limit_amount, resets_at, credit_request_id, credit_units, claimed_month)
    select gen_random_uuid(), p_organization_id, null, p_metric, p_amount, p_request_id, '{}'::jsonb, v_now,
           pg_catalog.now(), (select pg_catalog.array_agg(w.unit order by w.unit) from w), 'counted',
           ans.used, ans.lim, ans.ends, null, null, pg_catalog.date_trunc('month', v_now, 'UTC')
    from ans
    on conflict (organization_id, request_id, metric, claimed_month) do nothing
    returning 1
  )
  select p.organization_id is not null, p.timezone, p.features,
         exists (select from r), (select r.released from r),
         (select r.used from r), (select r.limit_amount from r), (select r.resets_at from r),
         (select r.credit_request_id from r),
         (select count(*) from w)::integer,
         (select pg_catalog.array_agg(w.unit order by w.unit) from w),
         (select pg_catalog.array_agg(w.starts order by w.unit) from w),
         (select pg_catalog.array_agg(w.ends order by w.unit) from w),
         (select pg_catalog.array_agg(w.lim order by w.unit) from w),
         (select pg_catalog.array_agg(up.count order by w.unit) from w left join up on up.window_unit = w.unit),
         (select pg_catalog.array_agg(up.inserted order by w.unit) from w left join up on up.window_unit = w.unit),
         (select ans.used from ans), (select ans.lim from ans), (select ans.ends from ans),
         exists (select from ins)
  into v_known, v_tz, v_features, v_stored, v_released, v_stored_used, v_stored_limit, v_stored_resets,
       v_credit_request_id, v_windows, v_units, v_starts, v_ends, v_limits, v_counts, v_inserted,
       used, limit_amount, resets_at, v_written
  from p;

  if not v_known then
    raise exception 'increment_usage: unknown organization %', p_organization_id
      using errcode = 'no_data_found';
  end if;

  if v_written then
    allowed := true;
    remaining := case when limit_amount - used < 0 then 0 else limit_amount - used end;
    perform billing.queue_quota_alerts(p_organization_id, p_metric, v_units[i], v_starts[i], v_ends[i],
                                       v_counts[i] - p_amount, v_counts[i], v_limits[i])
    from pg_catalog.generate_series(1, v_windows) i
    where v_limits[i] > 0
      and pg_catalog.floor(v_counts[i] * 100.0 / v_limits[i])
          > pg_catalog.floor((v_counts[i] - p_amount) * 100.0 / v_limits[i]);
    return;
  end if;

  if not v_stored and v_windows > 0 then
    -- Not counted: a window refused, or a concurrent duplicate wrote the row first. Put back the
    -- windows the statement changed (rows it created go) before anyone can see them.
    perform billing.put_back_usage(p_organization_id, p_metric, v_units, v_starts, v_inserted, v_counts, p_amount);
    if pg_catalog.array_position(v_counts, null) is null and p_request_id is not null then
      select true, m.state = 'released', m.used, m.limit_amount, m.resets_at, m.credit_request_id
      into v_stored, v_released, v_stored_used, v_stored_limit, v_stored_resets, v_credit_request_id
      from public.usage_metrics m
      where m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = p_metric;
      v_stored := coalesce(v_stored, false);
    end if;
  end if;

  if v_stored and not v_released then
    -- A retry: the first answer.
    allowed := true;
    used := v_stored_used;
    limit_amount := v_stored_limit;
    remaining := case when v_stored_limit < v_stored_used then 0 else v_stored_limit - v_stored_used end;
    resets_at := v_stored_resets;
    if v_credit_request_id is not null then
      select c.charged into credits_charged from public.credit_charges c
      where c.organization_id = p_organization_id and c.request_id = v_credit_request_id;
    end if;
    return;
  end if;

  if v_windows = 0 and not v_stored then
    -- Not in the plan: denied with limit 0.
    allowed := false;
    used := 0;
    limit_amount := 0;
    remaining := 0;
    resets_at := null;
    return;
  end if;

  v_general := billing.increment_usage_general(p_organization_id, p_metric, p_amount, p_request_id, v_now, v_tz,
                                               v_features);
  allowed := v_general.allowed;
  used := v_general.used;
  limit_amount := v_general.limit_amount;
  remaining := v_general.remaining;
  resets_at := v_general.resets_at;
  credits_charged := v_general.credits_charged;
end;
$function$;

CREATE VIEW "billing"."quota_pressure" WITH (security_invoker=true) AS  SELECT q.organization_id,
    o.name AS organization_name,
    e.plan_code,
    q.metric,
    q.window_unit,
    q.count AS used,
    l.lim AS limit_amount,
    round((((q.count)::numeric * 100.0) / (l.lim)::numeric), 1) AS percent,
    q.window_start,
    (((q.window_start AT TIME ZONE o.timezone) + (('1 '::text || (q.window_unit)::text))::interval) AT TIME ZONE o.timezone) AS resets_at
   FROM (((public.usage_quotas q
     JOIN public.organizations o ON ((o.id = q.organization_id)))
     CROSS JOIN LATERAL billing.effective_plan_rows(o.id, billing.now()) e(organization_id, timezone, plan_id, plan_code, tier, features, reason, in_grace, subscription_id, subscription_status, current_period_end, grace_ends_at))
     CROSS JOIN LATERAL ( SELECT
                CASE
                    WHEN (jsonb_typeof((e.features -> ((q.metric || '_per_'::text) || (q.window_unit)::text))) = 'number'::text) THEN ((e.features ->> ((q.metric || '_per_'::text) || (q.window_unit)::text)))::bigint
                    ELSE NULL::bigint
                END AS lim) l)
  WHERE ((q.window_start > (billing.now() - '32 days'::interval)) AND (q.window_start = (date_trunc((q.window_unit)::text, (billing.now() AT TIME ZONE o.timezone)) AT TIME ZONE o.timezone)) AND (l.lim > 0) AND (((q.count)::numeric * 100.0) >= ((l.lim * COALESCE(( SELECT min(t.t) AS min
           FROM public.billing_settings s,
            LATERAL unnest(s.quota_alert_thresholds) t(t)
          WHERE s.id), 75)))::numeric));

COMMENT ON VIEW "billing"."quota_pressure" IS 'Organizations at or above the lowest alert threshold (75 % by default) of a quota window now: offer an upgrade before the limit refuses their calls.';

GRANT SELECT ON TABLE "billing"."quota_pressure" TO "service_role";
