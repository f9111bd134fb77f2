-- billing_email_confirmation_kind: the notification kind that carries a billing email's
-- confirmation link. A new enum value gets a migration of its own: a value cannot be used in the
-- transaction that adds it, and the next migration (customer_emails) uses it.
alter type public.notification_kind add value if not exists 'billing_email_confirmation';
