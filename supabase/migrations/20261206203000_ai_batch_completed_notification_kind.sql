-- What this migration does: adds the notification kind the AI batch worker queues when a nightly
-- batch is done (ai_batch_completed). A new enum value gets a migration of its own: a value cannot
-- be used in the transaction that adds it, and the next migration (the AI batches module) uses it.
alter type public.notification_kind add value if not exists 'ai_batch_completed';
