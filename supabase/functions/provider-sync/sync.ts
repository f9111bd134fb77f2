// Carrying out claimed provider actions: each action goes to its provider's adapter (the registry),
// whose answer is recorded through billing.complete_provider_action; a refund the provider confirmed
// comes back as events, applied through the same SQL entry point as the webhooks first. On any
// attempt after the first the adapter is first asked what the provider already holds under the
// action's key (lookupAction), and that is recorded instead of calling again: a refund the provider
// made is recorded once whatever failed between the call and the record. Every SQL call is its own
// short transaction: no transaction is open while a provider is asked.
import { asService } from "../_shared/db.ts";
import { jsonbText } from "../_shared/jsonb.ts";
import { type ApplyResult, applyPaymentEvent } from "../_shared/payments.ts";
import { providers } from "../_shared/providers/registry.ts";
import {
  type ActionOutcome,
  type NormalizedEvent,
  PROVIDER_ACTION_KINDS,
  type ProviderAction,
  type ProviderAdapter,
} from "../_shared/providers/types.ts";

/** What carrying out one action did. */
export interface SyncOutcome {
  id: string;
  provider: string;
  kind: string;
  /** The outcome the adapter reported (or the worker decided). */
  outcome: ActionOutcome["outcome"];
  /**
   * The action's state after billing.complete_provider_action ('pending' again for a retry), or
   * 'unrecorded' when that call failed (the lease runs out and the action is claimed again).
   */
  state: string;
  error?: string;
  /** apply_payment_event's result for each event the provider confirmed. */
  applied?: string[];
}

export interface SyncOptions {
  /** The adapter for a provider name (default: the functions' registry). */
  adapterOf?: (name: string) => ProviderAdapter | undefined;
  /** Replaces the SQL entry point for events (tests). */
  apply?: (event: NormalizedEvent) => Promise<ApplyResult>;
  /** Replaces billing.complete_provider_action (tests); returns the new state. */
  complete?: (id: string, outcome: ActionOutcome) => Promise<string>;
}

/** The outcome of one action, from its adapter; an action no adapter can carry out fails with a reason. */
export async function outcomeOf(action: ProviderAction, adapterOf: SyncOptions["adapterOf"]): Promise<ActionOutcome> {
  if (!(PROVIDER_ACTION_KINDS as readonly string[]).includes(action.kind)) {
    return { outcome: "failed", error: `unknown provider action kind ${JSON.stringify(action.kind)}: nothing was sent` };
  }
  const adapter = (adapterOf ?? ((name: string) => providers.get(name)))(action.provider);
  if (!adapter) return { outcome: "failed", error: `no payment provider named ${action.provider} is registered` };
  if (!adapter.performAction) {
    return { outcome: "failed", error: `${action.provider} cannot carry out provider actions` };
  }
  try {
    // Any attempt after the first (a retry, or a claim whose lease ran out while running: a worker
    // that died) may follow a call the provider carried out: ask first, and record what it holds.
    if (action.attempts > 1 && adapter.lookupAction) {
      const found = await adapter.lookupAction(action);
      if (found) return found;
    }
    const outcome = await adapter.performAction(action);
    if (outcome.outcome === "failed" && adapter.lookupAction) {
      // Never failed while the provider holds what the action asked for under its key.
      const found = await adapter.lookupAction(action);
      if (found?.outcome === "succeeded") return found;
      if (found?.outcome === "retry") return { ...found, error: `${outcome.error}; ${found.error}` };
    }
    return outcome;
  } catch (e) {
    // Adapters never throw; one that does has a bug, and the action is tried again later.
    return { outcome: "retry", error: `the ${action.provider} adapter failed: ${(e as Error)?.message ?? e}` };
  }
}

/** billing.complete_provider_action in its own transaction; returns the new state. */
export async function completeAction(id: string, o: ActionOutcome): Promise<string> {
  const result = "result" in o && o.result !== undefined ? jsonbText(o.result) : null;
  const error = o.outcome === "succeeded" ? null : o.error.slice(0, 2000);
  const retryAfter = o.outcome === "retry" && typeof o.retryAfterSeconds === "number"
    ? Math.min(Math.max(0, Math.round(o.retryAfterSeconds)), 86_400)
    : null;
  const [{ state }] = await asService((tx) =>
    tx`select billing.complete_provider_action(${id}::uuid, ${o.outcome}, ${result}::text::jsonb, ${error},
      ${retryAfter}::integer) as state`
  );
  return state as string;
}

/** Carries out one claimed action and records what came of it. Never throws. */
export async function syncAction(action: ProviderAction, options: SyncOptions = {}): Promise<SyncOutcome> {
  const apply = options.apply ?? ((event: NormalizedEvent) => applyPaymentEvent(event));
  const complete = options.complete ?? completeAction;
  let outcome = await outcomeOf(action, options.adapterOf);
  const applied: string[] = [];
  if (outcome.outcome === "succeeded" && outcome.events?.length) {
    try {
      for (const event of outcome.events) applied.push((await apply(event)).result);
      outcome = { ...outcome, result: { ...outcome.result, applied } };
    } catch (e) {
      // The provider did it but the event is not recorded: try again. The next attempt asks the
      // provider first (lookupAction) and records what it holds, without calling again.
      outcome = {
        outcome: "retry",
        error: `applying what the provider confirmed failed: ${(e as Error)?.message ?? e}`,
        result: outcome.result,
      };
    }
  }
  let state: string;
  try {
    state = await complete(action.id, outcome);
  } catch (e) {
    // Not recorded (the database failed, or the lease passed to another worker): the lease
    // expires and the action is claimed again; the provider calls are idempotent.
    console.error(JSON.stringify({ fn: "provider-sync", level: "error", action: action.id, error: String((e as Error)?.message ?? e) }));
    return {
      id: action.id,
      provider: action.provider,
      kind: action.kind,
      outcome: outcome.outcome,
      state: "unrecorded",
      error: `the outcome could not be recorded: ${(e as Error)?.message ?? e}`,
    };
  }
  return {
    id: action.id,
    provider: action.provider,
    kind: action.kind,
    outcome: outcome.outcome,
    state,
    ...(outcome.outcome === "succeeded" ? {} : { error: outcome.error }),
    ...(applied.length ? { applied } : {}),
  };
}

/** The worker's answer: counts by the state each action was left in, and the outcomes. */
export function syncSummary(outcomes: SyncOutcome[]) {
  return {
    claimed: outcomes.length,
    succeeded: outcomes.filter((o) => o.state === "succeeded").length,
    retried: outcomes.filter((o) => o.state === "pending").length,
    failed: outcomes.filter((o) => o.state === "failed").length,
    unrecorded: outcomes.filter((o) => o.state === "unrecorded").length,
    actions: outcomes,
  };
}
