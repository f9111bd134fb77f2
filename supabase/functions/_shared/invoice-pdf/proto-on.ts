// Loaded just before fontkit (see fontkit.ts): @pdf-lib/fontkit's bundle makes its classes inherit
// static methods with `Sub.__proto__ = Super`, which Deno ignores (it disables the setter), so
// its Indic shaper loses `plan` and cannot shape. For the time fontkit's module evaluates,
// __proto__ is the standard accessor again; proto-off.ts puts Deno's back right after.
const saved = Object.getOwnPropertyDescriptor(Object.prototype, "__proto__");
(globalThis as { __supabillSavedProto?: PropertyDescriptor }).__supabillSavedProto = saved;
Object.defineProperty(Object.prototype, "__proto__", {
  configurable: true,
  get(this: object) {
    return Object.getPrototypeOf(this);
  },
  set(this: object, proto: unknown) {
    if (proto === null || typeof proto === "object" || typeof proto === "function") {
      Object.setPrototypeOf(this, proto as object | null);
    }
  },
});
