// A payment clicked through locally, as a frontend developer would: headless Chromium (Debian's
// `chromium`, installed by the scripts with the other Debian packages) posts the checkout's signed
// form to the fake PayU page, clicks Pay, and the fake sends PayU's signed webhook (reverse hash)
// to payu-webhook and the browser to surl (payu-return), which redirects to the app. The plan is
// active at the end. Chromium is driven over its DevTools protocol (a WebSocket), so no npm package
// is needed.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { adminSql, callFunction, createUser, env, mintToken } from "./helpers.ts";

const sql = adminSql(2);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

/** A headless Chromium and one page, driven over the DevTools protocol. */
async function openBrowser() {
  const dir = await Deno.makeTempDir({ prefix: "supabill-chromium-" });
  const child = new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--remote-debugging-port=0",
      `--user-data-dir=${dir}`,
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Chromium says where its DevTools listen on stderr.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let ws = "";
  while (!ws) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`chromium exited before it listened: ${seen}`);
    seen += value;
    ws = /DevTools listening on (ws:\/\/\S+)/.exec(seen)?.[1] ?? "";
  }
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const port = new URL(ws).port;
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t: { type: string }) => t.type === "page");
  const socket = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((ok, fail) => {
    socket.onopen = ok;
    socket.onerror = fail;
  });
  let next = 1;
  const pending = new Map<number, (m: { result?: unknown; error?: unknown }) => void>();
  const listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  socket.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.id) pending.get(m.id)?.(m);
    else for (const l of listeners) l(m.method, m.params);
  };
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((ok, fail) => {
      const id = next++;
      pending.set(
        id,
        (m) => (m.error ? fail(new Error(JSON.stringify(m.error))) : ok(m.result as Record<string, unknown>)),
      );
      socket.send(JSON.stringify({ id, method, params }));
    });
  const evaluate = async (expression: string) =>
    ((await send("Runtime.evaluate", { expression, returnByValue: true })).result as { value: unknown })
      .value;
  const close = async () => {
    socket.close();
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    send,
    evaluate,
    on: (l: (method: string, params: Record<string, unknown>) => void) => listeners.push(l),
    close,
  };
}

async function until<T>(
  what: string,
  f: () => Promise<T | null | undefined | false>,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test(
  "a payment clicked through on the fake PayU page in headless Chromium ends with the plan active",
  testOptions,
  async () => {
    const code = `click_${rand()}`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, features, active)
    values (${code}, ${`Click ${code}`}, 'pro', 'month', 49900, 'INR', '{"max_members": 5}'::jsonb, true)`;
    const owner = await createUser(sql, `owner-${code}@click.test`);
    const [{ id: org }] = await sql`insert into public.organizations (name, billing_email, state_code)
    values (${`Click ${code}`}, 'accounts@click.test', '29') returning id`;
    await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${owner}, 'owner')`;

    const res = await callFunction("checkout", {
      token: await mintToken(owner),
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ organization_id: org, plan_code: code, provider: "payu" }),
    });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const action = res.body.action_url as string;
    const fields = res.body.fields as Record<string, string>;

    const browser = await openBrowser();
    try {
      const requests: { url: string; method: string; status?: number }[] = [];
      browser.on((method, p) => {
        if (method !== "Network.requestWillBeSent") return;
        const r = p.redirectResponse as { url: string; status: number } | undefined;
        if (r) requests.push({ url: r.url, method: "redirect", status: r.status });
        const q = p.request as { url: string; method: string };
        requests.push({ url: q.url, method: q.method });
      });
      await browser.send("Network.enable");
      await browser.send("Page.enable");
      // The app's checkout page: the signed form, posted to PayU as a browser posts it.
      const inputs = Object.entries(fields).map(([k, v]) =>
        `<input type="hidden" name="${k}" value="${v.replace(/&/g, "&amp;").replace(/"/g, "&quot;")}">`
      ).join("");
      const appPage =
        `<form method="post" action="${action}">${inputs}</form><script>document.forms[0].submit()</script>`;
      await browser.send("Page.navigate", {
        url: `data:text/html;charset=utf-8,${encodeURIComponent(appPage)}`,
      });
      await until("the fake PayU page", () => browser.evaluate("!!document.getElementById('pay')"));
      assert(
        String(await browser.evaluate("document.body.innerText")).includes(fields.txnid),
        "the page names the transaction",
      );
      await browser.evaluate("document.getElementById('pay').click()");

      const [order] = await until("the order paid", async () => {
        const rows =
          await sql`select status from public.orders where receipt = ${fields.txnid} and status = 'paid'`;
        return rows.length ? rows : null;
      });
      assertEquals(order.status, "paid");
      const [settings] = await sql`select app_success_url from public.billing_settings`;
      const back = await until(
        "the redirect to the app",
        () => Promise.resolve(requests.find((r) => r.url.startsWith(String(settings.app_success_url)))),
      );
      const url = new URL(back.url);
      assertEquals([url.searchParams.get("order"), url.searchParams.get("status")], [fields.txnid, "paid"]);
      const posts = requests.filter((r) => r.method === "POST").map((r) => new URL(r.url).pathname);
      assertEquals(
        posts,
        ["/_payment", "/_payment/complete", "/functions/v1/payu-return"],
        "the form to PayU, the Pay button, then PayU's answer to surl",
      );
      assert(
        requests.some((r) => r.method === "redirect" && r.status === 303 && r.url.endsWith("/payu-return")),
        "payu-return redirected the browser",
      );
    } finally {
      await browser.close();
    }

    // PayU's server-to-server webhook reached payu-webhook with a valid reverse hash.
    const { webhooks } = await (await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/payu/payments`)).json();
    const mine = (webhooks as { url: string; txnid: string; status: number }[]).filter((w) =>
      w.txnid === fields.txnid
    );
    assertEquals(mine.map((w) => [new URL(w.url).pathname, w.status]), [["/functions/v1/payu-webhook", 200]]);
    const [sub] =
      await sql`select p.code, s.status from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
    where s.organization_id = ${org} and s.status = 'active'`;
    assertEquals([sub?.code, sub?.status], [code, "active"], "the plan is active");
    const events =
      await sql`select pe.status, pe.method from public.payment_events pe join public.orders o on o.id = pe.order_id
    where o.receipt = ${fields.txnid}`;
    // The method stays null: PayU's `mode` is outside the reverse hash, so the adapter does not take it from a post.
    assertEquals(
      events.map((e) => [e.status, e.method]),
      [["captured", null]],
      "one captured payment, webhook and return racing to one",
    );
  },
);

Deno.test("close the pool", testOptions, async () => {
  await sql.end();
});
