// Entry point; the handler is in handler.ts.
import { handler } from "./handler.ts";

Deno.serve(handler);
