// POST /functions/v1/ai-chat (signed in; verify_jwt = true): an OpenAI-style chat completion
// through Groq, metered by the organization's plan. Body {model, messages, temperature?,
// max_tokens?, stream?}; header x-organization-id. One SQL call reserves (public.ai_reserve), one
// settles (public.ai_settle) or releases (public.ai_release); the glue is in _shared/ai.ts.
import { aiChatHandler } from "../_shared/ai.ts";

Deno.serve(aiChatHandler);
