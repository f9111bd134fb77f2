// Per-person limits under real concurrency: one user creating organizations (or starting trials)
// on many connections at once. billing_settings.max_owned_organizations (3) must hold exactly, and
// one trial per person too. The rules themselves are tested in pgTAP (01-tenancy-per-person).
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, createUser, env } from "./helpers.ts";

/** Runs `total` calls as the signed-in user, each in its own transaction, over `connections` connections at once. */
async function asUserConcurrently(
  user: string,
  connections: number,
  total: number,
  call: (tx: postgres.TransactionSql, i: number) => Promise<unknown>,
): Promise<string[]> {
  const pool = postgres(env("SUPABASE_DB_URL"), { max: connections, prepare: false, onnotice: () => {} });
  try {
    // Open every connection first, so the calls below start together rather than one by one.
    await Promise.all(Array.from({ length: connections }, () => pool`select 1`));
    return await Promise.all(Array.from({ length: total }, async (_, i) => {
      try {
        await pool.begin(async (tx) => {
          await tx`select set_config('role', 'authenticated', true),
                          set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
          await call(tx, i);
        });
        return "ok";
      } catch (e) {
        return `${(e as { code?: string }).code} ${(e as Error).message}`;
      }
    }));
  } finally {
    await pool.end();
  }
}

const owned = async (sql: postgres.Sql, user: string) =>
  (await sql`select count(*)::int as n from public.organization_members where user_id = ${user} and role = 'owner'`)[0].n;

Deno.test("a user owning 2 of 3 organizations creates 12 more at once: exactly one passes", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql);
    const first = await asUserConcurrently(user, 1, 2, (tx, i) => tx`select public.create_organization(${`Race ${i}`})`);
    assertEquals(first, ["ok", "ok"]);
    const answers = await asUserConcurrently(user, 12, 12, (tx, i) => tx`select public.create_organization(${`Race more ${i}`})`);
    assertEquals(answers.filter((a) => a === "ok").length, 1);
    const refused = answers.filter((a) => a !== "ok");
    assertEquals(refused.length, 11);
    assertEquals(
      new Set(refused),
      new Set([`23514 max_owned_organizations limit reached: a user may own at most 3 organizations and user ${user} already owns 3`]),
    );
    assertEquals(await owned(sql, user), 3);
    const [{ n }] = await sql`select count(*)::int as n from public.organizations where name like 'Race more %'`;
    assertEquals(n, 1, "refused creations leave no organization behind");
  } finally {
    await sql.end();
  }
});

Deno.test("a new user creating 20 organizations on 20 connections at once gets exactly 3", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql);
    const answers = await asUserConcurrently(user, 20, 20, (tx, i) => tx`select public.create_organization(${`Burst ${i}`})`);
    assertEquals(answers.filter((a) => a === "ok").length, 3);
    assertEquals(answers.filter((a) => a.startsWith("23514 ")).length, 17);
    assertEquals(await owned(sql, user), 3);
  } finally {
    await sql.end();
  }
});

Deno.test("one user starting trials in 3 organizations at once gets exactly one trial", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql);
    const code = `tenancy_trial_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, trial_days)
      values (${code}, ${code}, 'pro', 'month', 99900, 'INR', 14)`;
    const orgs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [{ id }] = await sql`insert into public.organizations (name) values (${`${code} ${i}`}) returning id`;
      await sql`insert into public.organization_members (organization_id, user_id, role) values (${id}, ${user}, 'owner')`;
      orgs.push(id);
    }
    const answers = await asUserConcurrently(user, 3, 3, (tx, i) => tx`select public.start_trial(${orgs[i]}, ${code})`);
    assertEquals(answers.filter((a) => a === "ok").length, 1);
    assertEquals(
      answers.filter((a) => a !== "ok"),
      ["55000 you have already started a trial: a trial is once per person, in one organization",
       "55000 you have already started a trial: a trial is once per person, in one organization"],
    );
    const [{ n }] = await sql`select count(*)::int as n from public.subscriptions where organization_id = any (${orgs}::uuid[])`;
    assertEquals(n, 1);
  } finally {
    await sql.end();
  }
});
