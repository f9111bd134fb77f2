-- credits_low_notification_kind: the notification kind the credits module queues when a balance
-- falls under its threshold. A new enum value gets a migration of its own: a value cannot be used
-- in the transaction that adds it, and the next migration (the credits module) uses it.
alter type public.notification_kind add value if not exists 'credits_low';
