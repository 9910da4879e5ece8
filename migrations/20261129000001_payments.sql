-- Payment providers (NOWPayments, Stripe): a deposit made through a provider remembers the
-- provider's invoice, payment or checkout session, the provider's last status and what actually
-- arrived. A provider payment credits exactly one deposit (the unique index); a re-deposit to
-- the same address becomes a deposit of its own, linked to the one it followed (`parent_id`).

ALTER TABLE deposits ADD COLUMN provider TEXT;
-- The provider's invoice id, payment id or checkout session id, as created.
ALTER TABLE deposits ADD COLUMN provider_ref TEXT;
-- The provider payment whose completion credited this deposit.
ALTER TABLE deposits ADD COLUMN provider_payment_id TEXT;
ALTER TABLE deposits ADD COLUMN provider_status TEXT;
-- What actually arrived, in USD units, as the provider last reported it.
ALTER TABLE deposits ADD COLUMN paid_amount BIGINT;
ALTER TABLE deposits ADD COLUMN payment_url TEXT;
ALTER TABLE deposits ADD COLUMN pay_address TEXT;
ALTER TABLE deposits ADD COLUMN pay_amount TEXT;
ALTER TABLE deposits ADD COLUMN pay_currency TEXT;
ALTER TABLE deposits ADD COLUMN parent_id TEXT;
ALTER TABLE deposits ADD COLUMN updated_at BIGINT;

-- NULLs are distinct on both engines: only credited provider deposits take part.
CREATE UNIQUE INDEX deposits_by_provider_payment ON deposits (provider, provider_payment_id);
CREATE INDEX deposits_by_provider_ref ON deposits (provider, provider_ref);

-- A withdrawal's payout fee (`--withdrawal-fee-bps`, fixed when it is requested), booked to the
-- platform when it completes; the payout sent is `amount - fee`.
ALTER TABLE withdrawals ADD COLUMN fee BIGINT NOT NULL DEFAULT 0;

-- Provider events already applied (Stripe event ids), so a replayed event changes nothing.
CREATE TABLE provider_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);
