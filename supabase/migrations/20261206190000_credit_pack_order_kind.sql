-- credit_pack_order_kind: the order kind of a credit pack bought at checkout. A new enum value
-- gets a migration of its own: a value cannot be used in the transaction that adds it, and the
-- next migration (credit packs) uses it in the orders' check constraint and functions.
alter type public.order_kind add value if not exists 'credit_pack';
