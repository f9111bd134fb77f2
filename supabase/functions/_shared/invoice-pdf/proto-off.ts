// Loaded just after fontkit (see proto-on.ts): Deno's own __proto__ accessor again.
const g = globalThis as { __supabillSavedProto?: PropertyDescriptor };
if (g.__supabillSavedProto) Object.defineProperty(Object.prototype, "__proto__", g.__supabillSavedProto);
else delete (Object.prototype as { __proto__?: unknown }).__proto__;
delete g.__supabillSavedProto;
