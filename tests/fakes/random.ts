// The fakes' random draws (their ids: Razorpay's order_..., Stripe's pi_..., PayU's mihpayid, the
// mailbox's email ids): crypto's by default; after POST /__control/seed {seed} (the simulator sends
// its seed) a seeded generator (mulberry32), so a run repeated with the same seed gets the same ids
// and whatever orders by them (a list sorted by id, the product's provider ids) comes out the same.
// {seed: null} (or /__control/reset) goes back to crypto's.
let state: number | null = null;

function next(): number {
  state = (state! + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** Seeded draws from now on (a seed of 0 counts as 1), or crypto's again with null. */
export function seedRandom(seed: number | null): void {
  state = seed === null ? null : (seed >>> 0) || 1;
}

/** n random bytes. */
export function randomBytes(n: number): Uint8Array {
  if (state === null) return crypto.getRandomValues(new Uint8Array(n));
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() & 0xff;
  return out;
}

/** A number in [0, 1), as Math.random. */
export function randomFraction(): number {
  return state === null ? Math.random() : next() / 4294967296;
}

/** A version 4 UUID, as crypto.randomUUID. */
export function randomUuid(): string {
  if (state === null) return crypto.randomUUID();
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
