// The stand-in for PostgREST on the API URL (tests/fakes/postgrest.mjs, mounted by
// scripts/functions-server.ts), through the real supabase-js: each feature it serves, RLS as the
// caller, PostgREST's error shape and codes, and the refusal (PGRST127 pointing to `supabase
// start`) of what it does not serve.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import { adminSql, apiUrl, createUser, env, mintToken } from "./helpers.ts";

const testOptions = { sanitizeOps: false, sanitizeResources: false };
const sql = adminSql(2);
const tag = crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const publishableKey = Object.values(JSON.parse(env("SUPABASE_PUBLISHABLE_KEYS")))[0] as string;

/** supabase-js as an app holds it: the publishable key, and the user's token when signed in. */
function client(token?: string) {
  return createClient(apiUrl(), publishableKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: token ? { Authorization: `Bearer ${token}` } : {} },
  });
}

/** An organization whose owner has a subscription (plan A, a downgrade to B pending), a paid order with its invoice and a credit note, and a pending order. */
async function fixture() {
  await sql`update public.billing_settings
    set seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
        seller_state_code = coalesce(seller_state_code, left(seller_gstin, 2), '29')`;
  const [{ id: planA }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents)
    values (${`t_pgr_a_${tag}`}, 'Plan A', 'pro', 'month', 99900) returning id`;
  const [{ id: planB }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents)
    values (${`t_pgr_b_${tag}`}, 'Plan B', 'basic', 'month', 49900) returning id`;
  const [{ id: org }] = await sql`insert into public.organizations (name, billing_name, state_code)
    values (${`pgr ${tag}`}, ${`pgr ${tag}`}, '29') returning id`;
  const owner = await createUser(sql);
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${owner}, 'owner')`;
  const [{ id: sub }] = await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start,
      current_period_end, pending_plan_id, pending_plan_effective_at)
    values (${org}, ${planA}, 'active', now() - interval '1 day', now() + interval '29 days', ${planB}, now() + interval '29 days')
    returning id`;
  const [{ id: paid }] = await sql`insert into public.orders (organization_id, plan_id, provider, amount_cents, status, paid_at, created_at)
    values (${org}, ${planA}, 'manual', 99900, 'paid', now(), now() - interval '2 hours') returning id`;
  const [{ id: pending }] = await sql`insert into public.orders (organization_id, plan_id, provider, amount_cents, status, created_at)
    values (${org}, ${planA}, 'manual', 99900, 'pending', now() - interval '1 hour') returning id`;
  const [{ id: invoice }] = await sql`select billing.issue_invoice(${paid}, null) as id`;
  const [{ id: creditNote }] = await sql`select billing.issue_credit_note(${invoice}, 1000, 'partial refund (test)') as id`;
  const stranger = await createUser(sql);
  return {
    org, planA, planB, sub, paid, pending, invoice, creditNote,
    owner: client(await mintToken(owner)),
    stranger: client(await mintToken(stranger)),
    anon: client(),
  };
}

const f = await fixture();

Deno.test({
  name: "embeds: subscriptions with billing_plans!inner(*) and pending_plan(*) (computed relationships), maybeSingle",
  ...testOptions,
  fn: async () => {
    const { data, error } = await f.owner.from("subscriptions").select("*, billing_plans!inner(*), pending_plan(*)")
      .eq("organization_id", f.org).maybeSingle();
    assertEquals(error, null);
    const columns = (await sql`select attname from pg_attribute where attrelid = 'public.subscriptions'::regclass
      and attnum > 0 and not attisdropped order by attnum`).map((r) => r.attname);
    assertEquals(Object.keys(data!), [...columns, "billing_plans", "pending_plan"]);
    assertEquals([data!.id, data!.billing_plans.id, data!.billing_plans.code, data!.pending_plan.id],
      [f.sub, f.planA, `t_pgr_a_${tag}`, f.planB]);
    // A hint naming the plan_id foreign key resolves to the computed relationship of that name.
    const hinted = await f.owner.from("subscriptions").select("id, plan:billing_plans!subscriptions_plan_id_fkey(code)")
      .eq("organization_id", f.org).single();
    assertEquals(hinted, { ...hinted, error: null, data: { id: f.sub, plan: { code: `t_pgr_a_${tag}` } } });
  },
});

Deno.test({
  name: "embeds: orders with billing_plans(code, name) (many-to-one) and invoices(*, credit_notes(*)) (one-to-one, one-to-many), ordered",
  ...testOptions,
  fn: async () => {
    const { data, error } = await f.owner.from("orders").select("*, billing_plans(code, name), invoices(*, credit_notes(*))")
      .eq("organization_id", f.org).order("created_at", { ascending: false });
    assertEquals(error, null);
    assertEquals(data!.map((o) => [o.id, o.status, o.billing_plans, o.invoices?.id ?? null]), [
      [f.pending, "pending", { code: `t_pgr_a_${tag}`, name: "Plan A" }, null],
      [f.paid, "paid", { code: `t_pgr_a_${tag}`, name: "Plan A" }, f.invoice],
    ]);
    const [cn] = await sql`select credit_note_number, total_cents from public.credit_notes where id = ${f.creditNote}`;
    assertEquals(data![1].invoices.credit_notes.map((c: Record<string, unknown>) => [c.id, c.credit_note_number, Number(c.total_cents)]),
      [[f.creditNote, cn.credit_note_number, Number(cn.total_cents)]]);
    // !inner drops the rows without an invoice.
    const inner = await f.owner.from("orders").select("id, invoices!inner(id)").eq("organization_id", f.org);
    assertEquals(inner.data, [{ id: f.paid, invoices: { id: f.invoice } }]);
  },
});

Deno.test({
  name: "columns, aliases, filters (eq, neq, in, gt, is), order, limit, range, count, head",
  ...testOptions,
  fn: async () => {
    const q = () => f.owner.from("orders").select("id, amount:amount_cents, status").eq("organization_id", f.org);
    const [{ amount }] = await sql`select amount_cents::int as amount from public.orders where id = ${f.paid}`;
    assertEquals((await q().eq("status", "paid")).data, [{ id: f.paid, amount, status: "paid" }]);
    assertEquals((await q().neq("status", "paid")).data?.map((o) => o.id), [f.pending]);
    assertEquals((await q().in("status", ["paid", "pending"]).order("created_at")).data?.map((o) => o.id), [f.paid, f.pending]);
    assertEquals((await q().in("status", [])).data, []);
    assertEquals((await q().gt("amount_cents", amount)).data, []);
    assertEquals((await q().gte("amount_cents", amount).order("created_at")).data?.map((o) => o.id), [f.paid, f.pending]);
    assertEquals((await q().is("paid_at", null)).data?.map((o) => o.id), [f.pending]);
    assertEquals((await q().order("created_at", { ascending: false }).limit(1)).data?.map((o) => o.id), [f.pending]);
    assertEquals((await q().order("created_at").range(1, 1)).data?.map((o) => o.id), [f.pending]);
    const counted = await f.owner.from("orders").select("id", { count: "exact" }).eq("organization_id", f.org).limit(1);
    assertEquals([counted.count, counted.data?.length], [2, 1]);
    const head = await f.owner.from("orders").select("*", { count: "exact", head: true }).eq("organization_id", f.org);
    assertEquals([head.error, head.count, head.data], [null, 2, null]);
  },
});

Deno.test({
  name: "single() and maybeSingle(): PGRST116 unless one row, as PostgREST (406)",
  ...testOptions,
  fn: async () => {
    const none = await f.owner.from("orders").select("id").eq("id", crypto.randomUUID()).single();
    assertEquals([none.status, none.error?.code, none.error?.details], [406, "PGRST116", "The result contains 0 rows"]);
    const two = await f.owner.from("orders").select("id").eq("organization_id", f.org).single();
    assertEquals([two.status, two.error?.code], [406, "PGRST116"]);
    const maybeNone = await f.owner.from("orders").select("id").eq("id", crypto.randomUUID()).maybeSingle();
    assertEquals([maybeNone.error, maybeNone.data], [null, null]);
    const maybeTwo = await f.owner.from("orders").select("id").eq("organization_id", f.org).maybeSingle();
    assertEquals(maybeTwo.error?.code, "PGRST116");
    const one = await f.owner.from("orders").select("id").eq("id", f.paid).single();
    assertEquals(one.data, { id: f.paid });
  },
});

Deno.test({
  name: "as the caller: RLS hides another organization's rows; rpc runs as the user; 42501 is 403 for a user, 401 for anon",
  ...testOptions,
  fn: async () => {
    assertEquals((await f.stranger.from("orders").select("id").eq("organization_id", f.org)).data, []);
    assertEquals((await f.stranger.from("subscriptions").select("id").eq("organization_id", f.org).maybeSingle()).data, null);
    const mine = await f.owner.rpc("get_entitlements", { p_organization_id: f.org });
    assertEquals([mine.error, mine.data?.plan_code], [null, `t_pgr_a_${tag}`]);
    const theirs = await f.stranger.rpc("get_usage", { p_organization_id: f.org });
    assertEquals([theirs.status, theirs.error?.code], [403, "42501"]);
    assert(typeof theirs.error?.message === "string" && "details" in theirs.error! && "hint" in theirs.error!);
    const anon = await f.anon.rpc("create_organization", { p_name: "nobody" });
    assertEquals([anon.status, anon.error?.code], [401, "42501"]);
  },
});

Deno.test({
  name: "rpc: every function in public is found by its argument names (called with nulls as a stranger: an SQL answer, never PGRST202)",
  ...testOptions,
  fn: async () => {
    const fns = await sql`select p.proname as name, coalesce(p.proargnames[1:p.pronargs], '{}') as args
      from pg_proc p where p.pronamespace = 'public'::regnamespace and p.prokind = 'f'
        and not exists (select 1 from pg_type t where t.oid = any(p.proargtypes) and t.typrelid <> 0)
      order by 1`;
    assert(fns.length > 20, `only ${fns.length} functions`);
    const missed: string[] = [];
    for (const fn of fns) {
      const args = Object.fromEntries((fn.args as string[]).map((a) => [a, null]));
      const r = await f.stranger.rpc(fn.name, args);
      if (r.status === 404 && ["PGRST202", "PGRST203"].includes(r.error?.code ?? "")) missed.push(`${fn.name}: ${r.error?.message}`);
    }
    assertEquals(missed, []);
    const unknown = await f.owner.rpc("no_such_function", {});
    assertEquals([unknown.status, unknown.error?.code], [404, "PGRST202"]);
  },
});

Deno.test({
  name: "outside the stand-in: PGRST127 naming the feature and pointing to supabase start; unknown tables, relationships and columns as PostgREST",
  ...testOptions,
  fn: async () => {
    const refused = [
      await f.owner.from("orders").insert({ organization_id: f.org }),
      await f.owner.from("orders").update({ status: "paid" }).eq("id", f.pending),
      await f.owner.from("orders").delete().eq("id", f.pending),
      await f.owner.from("billing_plans").select("code").like("code", "t_pgr%"),
      await f.owner.from("orders").select("id, invoices(id)").gt("invoices.total_cents", 0),
      await f.owner.from("orders").select("id").or("status.eq.paid,status.eq.pending"),
      await f.owner.from("orders").select("amount_cents::text"),
      await f.owner.from("orders").select("id").csv(),
    ];
    for (const r of refused) {
      assertEquals([r.status, r.error?.code], [400, "PGRST127"], JSON.stringify(r.error));
      assert(r.error!.message.startsWith("not supported by the local stand-in for PostgREST"), r.error!.message);
      assert(r.error!.hint?.includes("npx supabase start"), r.error!.hint ?? "");
    }
    const table = await f.owner.from("no_such_table").select("*");
    assertEquals([table.status, table.error?.code], [404, "PGRST205"]);
    const rel = await f.owner.from("orders").select("id, no_such_relation(*)");
    assertEquals([rel.status, rel.error?.code], [400, "PGRST200"]);
    // A client string is never SQL: an unknown (or hostile) column name is an error from the catalog.
    const hostile = await f.owner.from("orders").select('id').eq('status"; drop table orders; --', "x");
    assertEquals([hostile.status, hostile.error?.code], [400, "42703"]);
    const [{ n }] = await sql`select count(*)::int as n from public.orders where organization_id = ${f.org}`;
    assertEquals(n, 2);
    // Other paths say what the local stack serves.
    const other = await fetch(`${apiUrl()}/auth/v1/user`, { headers: { apikey: publishableKey } });
    const body = await other.json();
    assertEquals(other.status, 404);
    assert(body.message.includes("supabase start"), body.message);
  },
});

Deno.test({ name: "close the connection", ...testOptions, fn: async () => await sql.end() });
