// @pdf-lib/fontkit, made able to shape Indic scripts under Deno. Its bundle needs two things Deno
// does not give it: static inheritance through `__proto__` while it loads (proto-on.ts /
// proto-off.ts, imported around it in this order) and a global `regeneratorRuntime` for its one
// generator, the syllable state machine of the Indic and Universal shapers (StateMachine.match,
// compiled by Babel to regeneratorRuntime.mark / wrap). The runtime below implements exactly
// that protocol: `mark` returns the function, `wrap` an iterator that runs the compiled body from
// `context.next` until it returns a value (a yield) or calls `context.stop()` (the end).
import "./proto-on.ts";
import fontkit from "npm:@pdf-lib/fontkit@1.1.1";
import "./proto-off.ts";

interface Context {
  prev: number;
  next: number | string;
  done: boolean;
  stop(): undefined;
}

const g = globalThis as { regeneratorRuntime?: unknown };
g.regeneratorRuntime ??= {
  mark: <T>(f: T): T => f,
  wrap(body: (context: Context) => unknown) {
    const context: Context = {
      prev: 0,
      next: 0,
      done: false,
      stop() {
        context.done = true;
        return undefined;
      },
    };
    const iterator = {
      next() {
        if (context.done) return { value: undefined, done: true };
        const value = body(context);
        return context.done ? { value: undefined, done: true } : { value, done: false };
      },
      [Symbol.iterator]() {
        return iterator;
      },
    };
    return iterator;
  },
};

export default fontkit;
