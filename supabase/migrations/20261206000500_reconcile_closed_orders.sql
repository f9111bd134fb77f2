-- =================================================================================================
-- supabill: reconciliation asks about closed orders too (an upgrade of the baseline)
--
-- A checkout order closes without a payment in two ways: its quote expires (a day for a plan, half
-- an hour for an upgrade), or a newer checkout or plan change supersedes it. Its payment may still
-- have been made, before the close, with the webhook lost: the buyer paid and nothing here knows.
-- Reconciliation used to ask the provider about pending orders only, and expired them itself, so
-- an order whose webhook was lost and whose quote ran out before the next reconcile run was never
-- asked about again. Now it also hands out orders closed without a payment in the last
-- three days, each at most every six hours (billing.order_checks), and whatever the provider says
-- goes through the same entry point as a webhook: a payment made while the quote held is applied,
-- one made after it is recorded for refund (billing.order_quote_problem).
--
-- Sections, in order: 1. tables; 2. private functions.
-- =================================================================================================


-- =================================================================================================
-- 1. Tables
-- =================================================================================================

/**
 * When reconciliation last asked the provider about an order closed without a payment (expired or
 * canceled), written by billing.reconcile_due_orders as it hands the order out. Private:
 * service_role only.
 */
create table billing.order_checks (
  order_id uuid primary key references public.orders (id) on delete cascade,
  checked_at timestamptz not null,
  created_at timestamptz not null default now()
);
revoke all on billing.order_checks from public;
grant select, insert, update, delete on billing.order_checks to service_role;

/**
 * The orders closed without a payment, by when their quote ran out (billing.reconcile_due_orders
 * reads the last three days of them): an index scan, however many orders closed long ago.
 */
create index orders_closed_unpaid_idx on public.orders ((coalesce(expires_at, created_at)))
  where status in ('expired', 'canceled') and paid_at is null;


-- =================================================================================================
-- 2. Private functions
-- =================================================================================================

/**
 * Reconciliation of checkout orders, step one (service_role only; the reconcile function asks the
 * providers about what this returns). Expires open orders whose quote ran out, then hands out up
 * to p_limit orders to ask about:
 *   pending orders older than billing_settings.order_pending_reconcile_after, every run;
 *   orders closed without a payment (expired or canceled) whose quote was made in the last three
 *   days, each at most every six hours (marked in billing.order_checks as handed out), since
 *   their payment may have been made before the close and its webhook lost.
 * Round by round: every organization's oldest due order, then every organization's second, so
 * one organization's many orders cannot crowd out another's. Orders of provider subscriptions are
 * reconciled with their subscription, not here.
 */
create or replace function billing.reconcile_due_orders(p_limit integer default 50)
returns table (
  order_id uuid,
  provider text,
  receipt text,
  provider_order_id text,
  amount_cents bigint,
  currency text,
  created_at timestamptz
)
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_after interval;
  v_closed_window constant interval := interval '3 days';
  v_closed_every constant interval := interval '6 hours';
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  select s.order_pending_reconcile_after into v_after from public.billing_settings s;
  v_after := coalesce(v_after, interval '15 minutes');

  update public.orders o set status = 'expired'
  where o.status in ('created', 'pending') and o.expires_at < v_now;

  return query
    with due as (
      select o.id, o.provider, o.receipt, o.provider_order_id, o.amount_cents, o.currency, o.created_at,
             o.status = 'pending' as open,
             pg_catalog.row_number() over (partition by o.organization_id order by o.created_at) as round
      from public.orders o
      left join billing.order_checks c on c.order_id = o.id
      where o.provider_subscription_id is null
        and (o.provider = 'payu' or o.provider_order_id is not null)
        and ((o.status = 'pending' and o.created_at <= v_now - v_after)
             or (o.status in ('expired', 'canceled') and o.paid_at is null
                 and coalesce(o.expires_at, o.created_at) >= v_now - v_closed_window
                 and (c.checked_at is null or c.checked_at <= v_now - v_closed_every)))
      order by round, o.created_at
      limit p_limit
    ),
    marked as (
      insert into billing.order_checks as oc (order_id, checked_at)
      select d.id, v_now from due d where not d.open
      on conflict on constraint order_checks_pkey do update set checked_at = excluded.checked_at
      returning oc.order_id
    )
    select d.id, d.provider::text, d.receipt, d.provider_order_id, d.amount_cents, d.currency, d.created_at
    from due d
    where d.open or exists (select 1 from marked m where m.order_id = d.id)
    order by d.round, d.created_at;
end;
$$;
revoke execute on function billing.reconcile_due_orders(integer) from public, anon, authenticated;
grant execute on function billing.reconcile_due_orders(integer) to service_role;
