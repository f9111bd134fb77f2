// What the Stripe tests share: the seller, organizations in Karnataka, the two clocks, the fake
// Stripe's recorded calls and deliveries, and acting as an organization's owner. Each test file
// keeps its own plans (codes with its own suffix) and its own checks.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type postgres from "npm:postgres@4.2.0";
import { createUser, fakeControl as fake, functionsUrl } from "./helpers.ts";

type Json = Record<string, unknown>;
type Sql = postgres.Sql;
export type Org = { id: string; owner: string };

/** Where the fake Stripe delivers its events. */
export const WEBHOOK = () => functionsUrl("stripe-webhook");

/** The seller registered in Karnataka (29) at 18 % GST on top of prices, as every Stripe test expects. */
export async function sellerInKarnataka(sql: Sql): Promise<void> {
  await sql`update public.billing_settings
    set gst_rate_bp = 1800, prices_include_tax = false,
        seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
        seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
}

/** A new organization in Bengaluru (state 29, so GST is CGST + SGST) with a new owner. */
export async function karnatakaOrg(sql: Sql, name: string, billingName = "Acme Pvt Ltd"): Promise<Org> {
  const owner = await createUser(sql);
  const [{ id }] = await sql`insert into public.organizations
      (name, billing_email, billing_name, billing_address_line1, billing_city, billing_postal_code, state_code)
    values (${name}, 'billing@example.in', ${billingName}, '1 MG Road', 'Bengaluru', '560001', '29')
    returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${id}, ${owner}, 'owner')`;
  return { id: id as string, owner };
}

/**
 * Moves the database's test clock (billing.now() of every connection, the functions server's too)
 * and the fakes' clock together; null puts both back to real time.
 */
export async function setClock(sql: Sql, ms: number | null): Promise<void> {
  if (ms === null) {
    await sql`delete from billing.test_clock`;
    await fake("/__control/clock", { at: null });
    return;
  }
  const at = new Date(ms).toISOString();
  await sql`insert into billing.test_clock (simulated_at) values (${at}) on conflict (id)
    do update set simulated_at = excluded.simulated_at, updated_at = now()`;
  await fake("/__control/clock", { at });
}

/** Runs `fn`, then puts both clocks back to real time and the fake Stripe's failures off, whatever happens. */
export async function underClock(sql: Sql, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } finally {
    await setClock(sql, null);
    await fake("/__control/stripe", { fail_status: null, fail_routes: null });
  }
}

/** The deliveries of a fake Stripe control answer, each checked to have been answered 200. */
export function allOk(answer: Json): Json[] {
  const deliveries = answer.deliveries as Json[];
  for (const d of deliveries) assertEquals([d.type, d.status], [d.type, 200], JSON.stringify(d));
  return deliveries;
}

export type Call = { route: string; method: string; path: string; body: Json; idempotency_key: string | null; status: number };

/** The calls the fake Stripe recorded on a route (e.g. `subscriptions.update`), filtered. */
export async function calls(route: string, pred: (c: Call) => boolean = () => true): Promise<Call[]> {
  return ((await fake(`/__control/stripe/calls?route=${encodeURIComponent(route)}`)).calls as Call[]).filter(pred);
}

/** The organization's latest subscription, with its plan's code. */
export async function subOf(sql: Sql, orgId: string) {
  return (await sql`select s.*, p.code as plan_code from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
    where s.organization_id = ${orgId} order by s.created_at desc limit 1`)[0];
}

/** Runs `fn` in a transaction as the organization's owner (role authenticated, the owner's claims). */
export async function asOwner<T>(sql: Sql, org: Org, fn: (tx: Sql) => Promise<T>): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: org.owner, role: "authenticated" })}, true)`;
    return await fn(tx as unknown as Sql);
  }) as T;
}
