// What a customer receives, read back from the fake mailbox (tests/fakes/email.ts) after
// notifications-send runs: one quota email for a jump across three thresholds, with figures true
// for the highest and the metric's display name (public.usage_metric_catalog); no alert for an AI
// reservation's worst case, one when settled use crosses; a payment received and a cancellation
// scheduled in one transaction arrive in that order, the receipt with its payment method, period
// and next renewal; a billing name with CR, LF and U+202E arrives as one plain line; the greeting
// names the person; an unconfirmed billing email receives nothing but its confirmation link.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type postgres from "npm:postgres@4.2.0";
import { adminSql, createUser, env, functionsUrl } from "./helpers.ts";

type Json = Record<string, unknown>;
const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 12);

interface Stored {
  id: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  idempotency_key: string;
  created_at: string;
}

async function mailbox(): Promise<Stored[]> {
  const body = await (await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/email`)).json();
  return body.emails as Stored[];
}

/** Runs notifications-send until nothing is claimed; the items of every run. */
async function sendAll(): Promise<{ id: string; state: string; error?: string }[]> {
  const items: { id: string; state: string; error?: string }[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await fetch(functionsUrl("notifications-send"), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${env("SUPABASE_SERVICE_ROLE_KEY")}`,
      },
      body: JSON.stringify({ limit: 1000 }),
    });
    const body = await res.json();
    assertEquals(res.status, 200, JSON.stringify(body));
    items.push(...body.items);
    if (body.claimed === 0) break;
  }
  return items;
}

/** An organization on a fresh plan with `features`, its owner (and, when asked, an admin). */
async function orgWithPlan(features: Json, { ownerName = null as string | null, admin = false } = {}) {
  const code = `mails_${rand()}`;
  const [{ id: planId }] =
    await sql`insert into public.billing_plans (code, name, tier, price_cents, features)
    values (${code}, ${`Mails ${code}`}, 'pro', 100000, ${
      sql.json({ max_members: 10, ...features } as postgres.JSONValue)
    })
    returning id`;
  const [{ id: org }] =
    await sql`insert into public.organizations (name, state_code) values (${code}, '29') returning id`;
  const [{ id: subscription }] = await sql`insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${org}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days') returning id`;
  const ownerEmail = `owner-${code}@mails.test`;
  const owner = await createUser(sql, ownerEmail);
  if (ownerName) {
    await sql`update auth.users set raw_user_meta_data = ${
      sql.json({ full_name: ownerName })
    } where id = ${owner}`;
  }
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${owner}, 'owner')`;
  const adminEmail = `admin-${code}@mails.test`;
  if (admin) {
    const a = await createUser(sql, adminEmail);
    await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${a}, 'admin')`;
  }
  return {
    org: org as string,
    owner,
    ownerEmail,
    adminEmail,
    planId: planId as string,
    planCode: code,
    subscription: subscription as string,
  };
}

const quotaNotes = (org: string) =>
  sql`select id, payload from public.notifications where organization_id = ${org} and kind = 'quota_threshold'
      order by (payload ->> 'threshold')::int`;

Deno.test(
  "one jump across 75, 90 and 100 %: one email, for 100 %, with true figures and the metric's display name",
  testOptions,
  async () => {
    const metric = `pings${rand().slice(0, 6)}`;
    await sql`insert into public.usage_metric_catalog (metric, display_name) values (${metric}, 'uptime checks')`;
    const { org, ownerEmail } = await orgWithPlan({ [`${metric}_per_day`]: 8 }, { ownerName: "Asha Rao" });
    await sql`select * from public.increment_usage(${org}, ${metric}, 5, null)`;
    assertEquals((await quotaNotes(org)).length, 0, "5 of 8 is under 75 %");
    await sql`select * from public.increment_usage(${org}, ${metric}, 3, null)`;
    const notes = await quotaNotes(org);
    assertEquals(
      notes.map((n) => [n.payload.threshold, n.payload.used, n.payload.limit]),
      [[100, 8, 8]],
      "one notification, for the highest threshold crossed",
    );
    await sendAll();
    const mine = (await mailbox()).filter((e) => e.idempotency_key === notes[0].id);
    assertEquals(mine.length, 1);
    assertEquals(mine[0].to, [ownerEmail]);
    assert(mine[0].subject.endsWith("has used all of its uptime checks for this day"), mine[0].subject);
    assert(mine[0].text.startsWith("Hello Asha Rao,\n"), "the greeting names the person");
    assert(
      mine[0].text.includes("8 of the 8 uptime checks") && mine[0].text.includes("(100%)"),
      mine[0].text,
    );
    assert(
      !mine[0].text.includes(metric) && !mine[0].subject.includes(metric),
      "the metric's code is never shown",
    );

    // The count falls back (a release) and rises across 75 % again: 100 % already alerted, no 75 % now.
    await sql`insert into public.usage_quotas (organization_id, metric, window_unit, window_start, count)
    select organization_id, metric, window_unit, window_start, 0 from public.usage_quotas
    where organization_id = ${org} and metric = ${metric}
    on conflict (organization_id, metric, window_unit, window_start) do update set count = 0`;
    await sql`select * from public.increment_usage(${org}, ${metric}, 7, null)`;
    assertEquals((await quotaNotes(org)).length, 1, "no lower alert after a higher one in the same window");
  },
);

Deno.test(
  "an AI reservation's worst case never alerts; settled use does, named by the catalog",
  testOptions,
  async () => {
    const { org } = await orgWithPlan({ groq_tokens_per_month: 50000 });
    const count = (request: string, amount: number) =>
      sql`select d.allowed from billing.ai_count(${org}, null, ${request}, 'groq_tokens', '{month}', now(), 'Asia/Kolkata',
        '{"groq_tokens_per_month": 50000}'::jsonb, ${amount}, p_is_reservation => true) d`;
    const first = `req_${rand()}`;
    assertEquals((await count(first, 50000))[0].allowed, true, "the whole month reserved");
    assertEquals((await quotaNotes(org)).length, 0, "a reservation of 100 % does not alert");
    await sql`select * from billing.settle_usage(${org}, ${first}, 17, 'groq_tokens')`;
    assertEquals((await quotaNotes(org)).length, 0, "17 tokens used: no alert");
    const second = `req_${rand()}`;
    await count(second, 45000);
    await sql`select * from billing.settle_usage(${org}, ${second}, 40000, 'groq_tokens')`;
    const notes = await quotaNotes(org);
    assertEquals(notes.map((n) => [n.payload.threshold, n.payload.used, n.payload.limit]), [[
      75,
      40017,
      50000,
    ]], "settled use crossed 75 % (40,017 of 50,000)");
    await sendAll();
    const [mail] = (await mailbox()).filter((e) => e.idempotency_key === notes[0].id);
    assert(mail.text.includes("40,017 of the 50,000 AI tokens"), mail.text);
    assert(!mail.text.includes("groq"), mail.text);
  },
);

Deno.test(
  "a payment and a cancellation of one transaction arrive in that order; the receipt has method, period and renewal",
  testOptions,
  async () => {
    const { org, ownerEmail, planCode, owner, subscription } = await orgWithPlan({}, {
      ownerName: "Vikram Iyer",
    });
    const order = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: owner, role: "authenticated" })}, true)`;
      const [row] = await tx`select order_id, receipt, amount_cents::bigint as amount
      from public.create_checkout_order(${org}, ${planCode}, 'payu')`;
      return row;
    });
    const payment = `pay_${order.receipt}`;
    await sql.begin(async (tx) => {
      const [{ r }] = await tx`select billing.apply_payment_event(${
        tx.json({
          provider: "payu",
          event_id: `${order.receipt}:success`,
          event_type: "payment.success",
          kind: "payment_captured",
          subscription_status: null,
          error_reason: null,
          order_ref: order.receipt,
          provider_order_id: null,
          provider_payment_id: payment,
          provider_subscription_id: null,
          provider_refund_id: null,
          amount_paise: Number(order.amount),
          currency: "INR",
          status: "success",
          method: "upi",
          occurred_at: null,
          payload: {},
        })
      }) as r`;
      assertEquals(r.result, "applied", JSON.stringify(r));
      await tx`insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
      select ${org}, s.id, 'cancellation_scheduled', jsonb_build_object('period_end', s.current_period_end),
             ${`cancellation_scheduled:${rand()}`}
      from public.subscriptions s where s.organization_id = ${org} and s.status = 'active'`;
    });
    const notes =
      await sql`select id, kind from public.notifications where organization_id = ${org} order by created_at, seq`;
    assertEquals(notes.map((n) => n.kind), ["payment_captured", "cancellation_scheduled"]);
    await sendAll();
    const mine = (await mailbox()).filter((e) => notes.some((n) => n.id === e.idempotency_key));
    assertEquals(mine.map((e) => notes.find((n) => n.id === e.idempotency_key)!.kind), [
      "payment_captured",
      "cancellation_scheduled",
    ], "sent in the order of their events");
    const receipt = mine[0];
    assertEquals(receipt.to, [ownerEmail]);
    assert(receipt.text.startsWith("Hello Vikram Iyer,\n"), receipt.text);
    assert(receipt.text.includes("Payment method: upi via payu"), receipt.text);
    assert(receipt.text.includes(`Payment reference: ${payment}`), receipt.text);
    const [sub] =
      await sql`select to_char(current_period_start at time zone 'Asia/Kolkata', 'FMDD FMMonth YYYY') as start,
      to_char(current_period_end at time zone 'Asia/Kolkata', 'FMDD FMMonth YYYY') as "end"
    from public.subscriptions where organization_id = ${org} and status = 'active'`;
    assert(receipt.text.includes(`Period paid for: ${sub.start} to ${sub.end}`), receipt.text);
    assert(/\n(Renew by|Next renewal|Ends on \(will not renew\)): /.test(receipt.text), receipt.text);
    void subscription;
  },
);

Deno.test(
  "a billing name with CR, LF and U+202E arrives as one plain line in the subject and the text",
  testOptions,
  async () => {
    const { org, ownerEmail } = await orgWithPlan({});
    const evil =
      "Your account is BLOCKED.\r\nBcc: list@attacker.example\r\nRe-verify at https://kyc.example\u202Emoc.knab\u202C";
    await sql`update public.organizations set billing_name = ${evil} where id = ${org}`;
    const [{ id }] = await sql`insert into public.notifications (organization_id, kind, payload, dedupe_key)
    values (${org}, 'credits_low', '{"balance": 10, "threshold": 50}', ${`credits_low:${rand()}`}) returning id`;
    const items = await sendAll();
    assertEquals(
      items.find((i) => i.id === id)?.state,
      "sent",
      JSON.stringify(items.find((i) => i.id === id)),
    );
    const [mail] = (await mailbox()).filter((e) => e.idempotency_key === id);
    assertEquals(mail.to, [ownerEmail]);
    const oneLine =
      "Your account is BLOCKED. Bcc: list@attacker.example Re-verify at https://kyc.example moc.knab";
    assertEquals(mail.subject, `${oneLine} has 10 credits left`);
    assert(mail.text.includes(`The credit balance of ${oneLine} fell under 50`), mail.text);
    assert(
      !/[\r\u202a-\u202e\u2066-\u2069]/.test(mail.text + mail.subject + mail.html),
      "no CR or bidi control anywhere",
    );
    assert(!mail.text.includes("\nBcc:"), "no line of the text starts with the injected header");
  },
);

Deno.test(
  "an unconfirmed billing email receives nothing but its confirmation; confirmed, it gets the billing emails",
  testOptions,
  async () => {
    const { org, owner, ownerEmail, adminEmail } = await orgWithPlan({}, { admin: true });
    const billing = `accounts-${rand()}@customer.test`;
    await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: owner, role: "authenticated" })}, true)`;
      await tx`select public.update_billing_profile(${org}, 'Customer Pvt Ltd', ${billing}, null, 'MG Road', null, 'Bengaluru',
      '29', '560001', 'IN')`;
    });
    const [orgRow] =
      await sql`select billing_email, billing_email_confirmed_at from public.organizations where id = ${org}`;
    assertEquals([orgRow.billing_email, orgRow.billing_email_confirmed_at], [billing, null]);
    const [{ id: notice }] =
      await sql`insert into public.notifications (organization_id, kind, payload, dedupe_key)
    values (${org}, 'credits_low', '{"balance": 10, "threshold": 50}', ${`credits_low:${rand()}`}) returning id`;
    await sendAll();
    const toBilling = (await mailbox()).filter((e) => e.to.includes(billing));
    assertEquals(toBilling.length, 1, "only the confirmation reached the new address");
    const confirmation = toBilling[0];
    assert(
      confirmation.subject.startsWith(`Confirm ${billing} as the billing email of`),
      confirmation.subject,
    );
    const [{ token }] =
      await sql`select token from billing.billing_email_confirmations where organization_id = ${org}`;
    const link = `${functionsUrl("billing-email-confirm")}?token=${token}`;
    assert(confirmation.text.includes(link), confirmation.text);
    const [noticeMail] = (await mailbox()).filter((e) => e.idempotency_key === notice);
    assertEquals(noticeMail.to, [adminEmail, ownerEmail].sort(), "until confirmed: the owners and admins");
    // The payload an owner can read does not carry the token.
    const [{ payload }] =
      await sql`select payload from public.notifications where organization_id = ${org} and kind = 'billing_email_confirmation'`;
    assert(!JSON.stringify(payload).includes(String(token)), "the token is not in the readable payload");

    // The link, opened without any account: a page with one button; opening it changes nothing.
    const opened = await fetch(link);
    const openedHtml = await opened.text();
    assertEquals(opened.status, 200, openedHtml);
    assert(openedHtml.includes('id="confirm"') && openedHtml.includes(`value="${token}"`), openedHtml);
    const confirmedAt = async () =>
      (await sql`select billing_email_confirmed_at as at from public.organizations where id = ${org}`)[0].at;
    assertEquals(await confirmedAt(), null, "a GET confirms nothing (mail scanners open links)");
    const post = (body: string, type: string) =>
      fetch(functionsUrl("billing-email-confirm"), {
        method: "POST",
        headers: { "content-type": type },
        body,
      });
    const unknown = await post(JSON.stringify({ token: "0".repeat(64) }), "application/json");
    assertEquals([unknown.status, (await unknown.json()).code], [404, "confirmation_not_found"]);
    const bad = await post(JSON.stringify({ token: "x" }), "application/json");
    assertEquals([bad.status, (await bad.json()).code], [400, "invalid_token"]);
    // The button.
    const clicked = await post(
      new URLSearchParams({ token: String(token) }).toString(),
      "application/x-www-form-urlencoded",
    );
    const clickedHtml = await clicked.text();
    assertEquals(clicked.status, 200, clickedHtml);
    assert(clickedHtml.includes(`${billing} now receives the billing emails`), clickedHtml);
    const at = await confirmedAt();
    assert(at !== null, "confirmed");
    const again = await post(JSON.stringify({ token }), "application/json");
    const againBody = await again.json();
    assertEquals([again.status, againBody.organization_id, againBody.billing_email], [200, org, billing]);
    assertEquals(
      new Date(againBody.confirmed_at).getTime(),
      new Date(at).getTime(),
      "following the link twice answers the same",
    );

    const [{ id: after }] =
      await sql`insert into public.notifications (organization_id, kind, payload, dedupe_key)
    values (${org}, 'credits_low', '{"balance": 5, "threshold": 50}', ${`credits_low:${rand()}`}) returning id`;
    await sendAll();
    const [afterMail] = (await mailbox()).filter((e) => e.idempotency_key === after);
    assertEquals(afterMail.to, [billing], "confirmed: billing emails go to it");
    assert(afterMail.text.startsWith("Hello,\n"), "an address that is nobody's account: no name to greet");
  },
);

Deno.test("close the pool", testOptions, async () => {
  await sql.end();
});
